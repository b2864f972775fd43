#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_pool.h"
#include "gateway/config.h"
#include "http/router.h"
#include "http/server.h"

namespace tau::gateway {

// Path templates of the API, also reported by the status endpoint.
namespace paths {
inline constexpr const char* status = "/gateway/status";
inline constexpr const char* auth_session = "/gateway/auth/session";
inline constexpr const char* sessions = "/gateway/external-coding-agent/sessions";
inline constexpr const char* session_detail =
    "/gateway/external-coding-agent/sessions/{session_id}";
inline constexpr const char* progress =
    "/gateway/external-coding-agent/sessions/{session_id}/progress";
inline constexpr const char* followups =
    "/gateway/external-coding-agent/sessions/{session_id}/followups";
inline constexpr const char* followups_drain =
    "/gateway/external-coding-agent/sessions/{session_id}/followups/drain";
inline constexpr const char* stream = "/gateway/external-coding-agent/sessions/{session_id}/stream";
inline constexpr const char* close = "/gateway/external-coding-agent/sessions/{session_id}/close";
inline constexpr const char* reap = "/gateway/external-coding-agent/reap";
}  // namespace paths

struct RequestContext;

// The HTTP face of the gateway: routes each request, authorizes it, applies the rate limit and
// the body limit, and hands it to a thin handler over the bridge.
class GatewayApi {
 public:
  GatewayApi(const GatewayConfig& config, bridge::SessionPool& pool,
             auth::Authenticator& authenticator, auth::RateLimiter& rate_limiter);

  boost::asio::awaitable<void> handle(http::Exchange& exchange);

 private:
  // Most routes answer one JSON object; the stream route writes its response itself.
  // (JSON is built outside coroutines: g++ 12 miscompiles some brace-initialized JSON in them.)
  using JsonHandler = std::function<boost::json::object(GatewayApi&, RequestContext&)>;
  using StreamHandler = std::function<boost::asio::awaitable<void>(GatewayApi&, RequestContext&)>;
  struct RouteSpec {
    JsonHandler json_handler;
    StreamHandler stream_handler;
    bool authenticated = true;
    bool reads_body = false;
  };

  boost::asio::awaitable<void> dispatch(http::Exchange& exchange, RequestContext& context);

  boost::json::object issue_auth_session(RequestContext& context);
  boost::json::object status(RequestContext& context);
  boost::json::object open_session(RequestContext& context);
  boost::json::object session_detail(RequestContext& context);
  boost::json::object append_progress(RequestContext& context);
  boost::json::object append_followup(RequestContext& context);
  boost::json::object drain_followups(RequestContext& context);
  boost::asio::awaitable<void> stream(RequestContext& context);
  boost::json::object close_session(RequestContext& context);
  boost::json::object reap(RequestContext& context);

  const GatewayConfig& config_;
  bridge::SessionPool& pool_;
  auth::Authenticator& authenticator_;
  auth::RateLimiter& rate_limiter_;
  http::Router<RouteSpec> router_;
};

}  // namespace tau::gateway
