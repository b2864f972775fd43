#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/query.h"
#include "http/server.h"
#include "store/session_store.h"

namespace tau::gateway {

// Whether a route takes a request body: none (it is not read), an optional JSON object (an
// empty body is the empty object) or a required one.
enum class RequestBody { absent, optional, required };

// One request on its way through the API: what admission learned, the body, and what the
// handler changed.
struct RequestContext {
  explicit RequestContext(http::Exchange& exchange) : exchange(exchange) {}

  http::Exchange& exchange;
  http::RequestTarget target;
  std::optional<std::size_t> route_index;  // into the router's routes, once one matched
  std::string_view principal_kind = "anonymous";
  std::vector<std::string> params;              // path parameters, in template order
  std::string preflight_methods;                // a CORS preflight's: the path's methods
  RequestBody body_rule = RequestBody::absent;  // the matched route's
  std::string body;                             // as read, unless the route takes none
  // The store ticket of what the handler changed: the answer waits until it is durable.
  store::Ticket commit_ticket = 0;

  const std::string& session_id() const { return params.at(0); }

  // The body as a JSON object, parsed by the route's rule the first time a handler asks and kept
  // (so a handler's own refusals, such as the login route's auth mode, still come before a
  // malformed body's). Throws ApiError 400 `malformed_json` naming the problem.
  const boost::json::object& json_body();

 private:
  std::optional<boost::json::object> json_body_;
};

}  // namespace tau::gateway
