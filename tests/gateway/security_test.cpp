// The auth sweep over every registered route, and secrets that must never leave the gateway.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

struct Route {
  std::string method;
  std::string path;  // template
};

// Every route the gateway registers, as it describes them: a unit test checks that the served
// description and the registered routes are the same set.
std::vector<Route> registered_routes(std::uint16_t port) {
  const json::value document = HttpClient(port).get("/gateway/openapi.json").json();
  std::vector<Route> routes;
  for (const auto& [path, item] : document.at("paths").as_object()) {
    for (const auto& [method, operation] : item.as_object()) {
      std::string upper(method);
      for (char& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (upper == "GET" || upper == "POST")
        routes.push_back(Route{upper, std::string(path)});
    }
  }
  return routes;
}

// Routes anyone may call: health probes, the API description, the dashboard's files, login.
bool is_public(const Route& route) {
  static const std::set<std::string> kPublic = {
      "/healthz",   "/readyz",           "/gateway/openapi.json",
      "/dashboard", "/dashboard/app.js", "/dashboard/app.css"};
  return kPublic.contains(route.path) ||
         (route.method == "POST" && route.path == "/gateway/auth/session");
}

std::string concrete(const std::string& path_template, const std::string& session_id) {
  std::string path = path_template;
  if (const auto at = path.find("{session_id}"); at != std::string::npos)
    path.replace(at, 12, session_id);
  if (const auto at = path.find("{request_id}"); at != std::string::npos)
    path.replace(at, 12, "perm-1");
  return path;
}

// Asks every non-public route with `authorization` (and, for the stream, the same token as
// `access_token`), expecting 401 `unauthorized` from each.
void expect_every_private_route_refuses(std::uint16_t port, const std::string& session_id,
                                        const std::optional<std::string>& token,
                                        const std::string& what) {
  HttpClient client(port, token.value_or(""));
  int checked = 0;
  for (const Route& route : registered_routes(port)) {
    if (is_public(route))
      continue;
    std::string target = concrete(route.path, session_id);
    if (token && route.path.ends_with("/stream"))
      target += "?follow=true&access_token=" + *token;
    const auto response = route.method == "GET"
                              ? client.get(target)
                              : client.post(target, "{\"message\":\"x\",\"workspace_id\":\"w\"}");
    EXPECT_EQ(response.status, 401u) << what << ": " << route.method << " " << target;
    if (response.status == 401u) {
      EXPECT_EQ(response.error_code(), "unauthorized") << what << ": " << route.path;
    }
    ++checked;
  }
  // status, metrics, list, open, detail, progress, follow-ups, drain, stream, close, reap,
  // cancel, permissions, permission answer: a new route must be added here on purpose, public or
  // not.
  EXPECT_EQ(checked, 14) << what;
}

// The sweeps send dozens of wrong tokens on purpose: they are not slowed (AuthThrottle tests in
// auth_test.cpp cover that).
TEST(AuthSweep, TokenModeRefusesEveryPrivateRouteWithoutTheToken) {
  GatewayProcess gateway({"--auth-token", "the-right-token", "--rate-limit-max-requests", "100000",
                          "--auth-failures-free", "100000"});
  const std::string session = open_session(HttpClient(gateway.port(), "the-right-token"), "repo");
  expect_every_private_route_refuses(gateway.port(), session, std::nullopt, "no credentials");
  expect_every_private_route_refuses(gateway.port(), session, "the-wrong-token", "wrong token");
  expect_every_private_route_refuses(gateway.port(), session, "the-right-token-", "longer token");
  // The public routes answer without one.
  for (const Route& route : registered_routes(gateway.port())) {
    if (is_public(route) && route.method == "GET") {
      EXPECT_EQ(HttpClient(gateway.port()).get(route.path).status, 200u) << route.path;
    }
  }
}

TEST(AuthSweep, PasswordSessionModeRefusesMissingWrongAndExpiredTokens) {
  GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", "pw",
                          "--session-ttl-seconds", "1", "--rate-limit-max-requests", "100000",
                          "--auth-failures-free", "100000"});
  HttpClient anonymous(gateway.port());
  auto login = [&] {
    return std::string(anonymous.post("/gateway/auth/session", json_body({{"password", "pw"}}))
                           .json()
                           .at("access_token")
                           .as_string());
  };
  const std::string session = open_session(HttpClient(gateway.port(), login()), "repo");
  expect_every_private_route_refuses(gateway.port(), session, std::nullopt, "no credentials");
  expect_every_private_route_refuses(gateway.port(), session, std::string(64, 'a'),
                                     "unknown token");

  // A token past its one-second lifetime: one seen working (a slow machine may take longer than
  // its lifetime to use a token first: log in again then), polled until it is refused, then
  // swept with. The deadlines only bound a hang.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string expiring;
  do {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no fresh token ever worked";
    expiring = login();
  } while (HttpClient(gateway.port(), expiring).get("/gateway/status").status != 200u);
  HttpClient holder(gateway.port(), expiring);
  while (holder.get("/gateway/status").status != 401u) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "a 1 s token still works after 30 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  expect_every_private_route_refuses(gateway.port(), session, expiring, "expired token");
}

TEST(Secrets, NeverInLogsErrorsStatusMetricsOrStreams) {
  const std::string token = "tok-7f3a9c1e5b2d4680aa";
  const std::string password = "pw-91c2e7d4b8a6f350cc";
  const std::string worker_secret = "env-44d1a8e2c9b7f063dd";
  std::string seen;  // everything the gateways answered

  {
    GatewayProcess gateway({"--auth-token", token, "--worker-command", "/bin/cat", "--worker-env",
                            "API_KEY=" + worker_secret});
    HttpClient client(gateway.port(), token);
    const std::string session = open_session(client, "repo");
    seen += client.post(session_path(session, "/progress"), json_body({{"message", "m"}})).body;
    seen += client.get(session_path(session, "/stream?access_token=" + token)).body;
    seen += HttpClient(gateway.port())
                .get(session_path(session, "/stream?access_token=" + token + "x"))
                .body;
    seen += HttpClient(gateway.port(), token + "x").get(kSessions).body;
    seen += client.get("/gateway/status").body;
    seen += client.get("/metrics").body;
    seen += client.get("/nope?access_token=" + token).body;
    gateway.stop();
    seen += gateway.stderr_text();
  }
  {
    GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", password});
    HttpClient anonymous(gateway.port());
    const auto login = anonymous.post("/gateway/auth/session", json_body({{"password", password}}));
    const std::string issued(login.json().at("access_token").as_string());
    HttpClient client(gateway.port(), issued);
    seen += anonymous.post("/gateway/auth/session", json_body({{"password", password + "x"}})).body;
    seen += anonymous.post("/gateway/auth/session", "{\"password\":" + password + "}").body;
    seen += client.get("/gateway/status").body;
    seen += client.get("/metrics").body;
    const std::string session = open_session(client, "repo");
    seen += client.get(session_path(session, "/stream?access_token=" + issued)).body;
    gateway.stop();
    const std::string log = gateway.stderr_text();
    EXPECT_EQ(log.find(issued), std::string::npos) << "issued token in the log";
    seen += log;
    EXPECT_EQ(seen.find(issued.substr(0, 16)), std::string::npos) << "issued token leaked";
  }
  for (const std::string& secret : {token, password, worker_secret}) {
    EXPECT_EQ(seen.find(secret), std::string::npos) << "leaked: " << secret;
  }
  EXPECT_NE(seen.find("auth_token=<redacted>"), std::string::npos);  // the log was captured
}

}  // namespace
}  // namespace tau::test
