// The API description built into the binary names exactly the routes the gateway registers: a
// route added without its description, or described but never served, fails here.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <set>
#include <string>
#include <utility>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_pool.h"
#include "gateway/agent_sessions.h"
#include "gateway/assets.h"
#include "gateway/config.h"
#include "gateway/gateway_api.h"
#include "gateway/worker_supervisor.h"

namespace tau::gateway {
namespace {

namespace json = boost::json;
using Route = std::pair<std::string, std::string>;  // (METHOD, path template)

std::set<Route> registered_routes() {
  GatewayConfig config;
  config.auth.mode = auth::AuthMode::localhost_dev;
  auto clock = [] { return std::int64_t{0}; };
  bridge::SessionPool pool(bridge::PoolLimits{}, clock);
  auth::Authenticator authenticator(auth::AuthConfig{config.auth.mode, "", "", 60}, clock);
  auth::LocalRateLimiter rate_limiter(60, 100, clock);
  boost::asio::io_context io;
  WorkerSupervisor workers(io, pool, config);
  AgentSessions agents(io, pool, config);
  GatewayApi api(config, pool, authenticator, rate_limiter, workers, agents);
  const auto routes = api.routes();
  return std::set<Route>(routes.begin(), routes.end());
}

std::set<Route> described_routes() {
  static const std::set<std::string> kMethods = {"get",     "put",  "post",  "delete",
                                                 "options", "head", "patch", "trace"};
  const json::value document = json::parse(assets::openapi_json);
  std::set<Route> routes;
  for (const auto& [path, item] : document.at("paths").as_object()) {
    for (const auto& [key, operation] : item.as_object()) {
      std::string method(key);
      if (!kMethods.contains(method))
        continue;  // parameters, summary, ...
      for (char& c : method)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      routes.emplace(method, std::string(path));
    }
  }
  return routes;
}

TEST(OpenApi, DescribesEveryRegisteredRouteAndNoOther) {
  const auto registered = registered_routes();
  const auto described = described_routes();
  ASSERT_GE(registered.size(), 21u);
  for (const auto& route : registered)
    EXPECT_TRUE(described.contains(route))
        << "not in docs/openapi.yaml: " << route.first << " " << route.second;
  for (const auto& route : described)
    EXPECT_TRUE(registered.contains(route))
        << "described but not served: " << route.first << " " << route.second;
}

TEST(OpenApi, TheServedDocumentIsOpenApi31) {
  const json::value document = json::parse(assets::openapi_json);
  EXPECT_EQ(document.at("openapi"), "3.1.0");
}

}  // namespace
}  // namespace tau::gateway
