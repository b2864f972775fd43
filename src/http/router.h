#pragma once

#include <ostream>  // Boost 1.81 string_view.hpp uses std::ostream without including it

#include <algorithm>
#include <boost/beast/http/verb.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tau::http {

using boost::beast::http::verb;

// Splits a route template such as "/a/{id}/b" into its segments.
std::vector<std::string> split_template(std::string_view route_template);

// True when the decoded path segments fit the template segments; `{name}` segments capture one
// non-empty segment each, in order, into `params`.
bool match_segments(const std::vector<std::string>& template_segments,
                    const std::vector<std::string>& path_segments,
                    std::vector<std::string>& params);

// Maps (method, path) to a value. Tells apart an unknown path from a known path with another
// method, so the caller can answer 404 or 405 with an Allow header. Every GET route also answers
// HEAD (RFC 9110 section 9.3.2): a HEAD request matches it, and its Allow lists HEAD after GET.
// The route found for HEAD is the GET route itself; sending its answer without the body is the
// server's job (http::Exchange).
template <class Value>
class Router {
 public:
  struct Route {
    verb method;
    std::string route_template;
    std::vector<std::string> segments;
    Value value;
  };

  struct Match {
    enum class Kind { found, not_found, method_not_allowed } kind = Kind::not_found;
    const Route* route = nullptr;
    std::vector<std::string> params;
    std::string allow;  // for method_not_allowed, e.g. "GET, POST"
  };

  void add(verb method, std::string route_template, Value value) {
    auto segments = split_template(route_template);
    routes_.push_back(
        Route{method, std::move(route_template), std::move(segments), std::move(value)});
  }

  Match match(verb method, const std::vector<std::string>& path_segments) const {
    Match result;
    std::vector<verb> allowed;
    auto allow = [&allowed](verb allowed_method) {
      if (std::find(allowed.begin(), allowed.end(), allowed_method) == allowed.end())
        allowed.push_back(allowed_method);
    };
    for (const Route& route : routes_) {
      std::vector<std::string> params;
      if (!match_segments(route.segments, path_segments, params))
        continue;
      if (route.method == method || (method == verb::head && route.method == verb::get)) {
        result.kind = Match::Kind::found;
        result.route = &route;
        result.params = std::move(params);
        return result;
      }
      result.kind = Match::Kind::method_not_allowed;
      allow(route.method);
      if (route.method == verb::get)
        allow(verb::head);
    }
    for (const verb allowed_method : allowed) {
      if (!result.allow.empty())
        result.allow += ", ";
      result.allow += std::string(boost::beast::http::to_string(allowed_method));
    }
    return result;
  }

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace tau::http
