// Auth modes and rate limiting over HTTP against the real binary.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <regex>
#include <thread>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

const std::string kToken = "test-token-0123456789";
const std::string kPassword = "correct horse battery staple";

json::value auth_status(const HttpClient& client) {
  const auto response = client.get("/gateway/status");
  EXPECT_EQ(response.status, 200u) << response.body;
  return response.json().at("auth");
}

TEST(TokenAuth, RequiresTheBearerTokenOnEveryApiRoute) {
  // Many wrong tokens on purpose; their throttling is AuthThrottle's subject.
  GatewayProcess gateway({"--auth-token", kToken, "--auth-failures-free", "100000"});
  HttpClient anonymous(gateway.port());
  HttpClient wrong(gateway.port(), "not-the-token");
  HttpClient authorized(gateway.port(), kToken);

  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/gateway/status"},
      {"POST", kSessions},
      {"GET", session_path("eca_x")},
      {"POST", session_path("eca_x", "/progress")},
      {"POST", session_path("eca_x", "/followups")},
      {"POST", session_path("eca_x", "/followups/drain")},
      {"GET", session_path("eca_x", "/stream")},
      {"POST", session_path("eca_x", "/close")},
      {"POST", "/gateway/external-coding-agent/reap"},
  };
  for (const auto& [method, target] : routes) {
    const std::optional<std::string> body =
        method == "POST" ? std::optional<std::string>("{}") : std::nullopt;
    for (const HttpClient* client : {&anonymous, &wrong}) {
      const auto response = client->request(method, target, body);
      EXPECT_EQ(response.status, 401u) << method << " " << target;
      EXPECT_EQ(response.error_code(), "unauthorized") << method << " " << target;
    }
  }
  const auto raw = authorized.get("/gateway/status", {{"Authorization", "bearer " + kToken}});
  EXPECT_EQ(raw.status, 200u) << "the scheme name is case-insensitive";
  const auto status = auth_status(authorized);
  EXPECT_EQ(status.at("mode").as_string(), "token");
  EXPECT_EQ(status.at("auth_failures").as_int64(), 2 * static_cast<std::int64_t>(routes.size()));
  EXPECT_EQ(status.at("active_sessions").as_int64(), 0);

  const auto login = authorized.post("/gateway/auth/session", json_body({{"password", "x"}}));
  EXPECT_EQ(login.status, 400u);
  EXPECT_EQ(login.error_code(), "auth_mode_mismatch");

  // No secret ever reaches the gateway's own output.
  EXPECT_EQ(gateway.stderr_text().find(kToken), std::string::npos);
}

TEST(PasswordSessionAuth, ExchangesThePasswordForExpiringTokens) {
  GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", kPassword});
  HttpClient anonymous(gateway.port());

  const auto wrong = anonymous.post("/gateway/auth/session", json_body({{"password", "nope"}}));
  EXPECT_EQ(wrong.status, 401u);
  EXPECT_EQ(wrong.error_code(), "invalid_credentials");
  const auto missing = anonymous.post("/gateway/auth/session", "{}");
  EXPECT_EQ(missing.status, 400u);
  EXPECT_EQ(missing.error_code(), "malformed_json");

  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto login = anonymous.post("/gateway/auth/session", json_body({{"password", kPassword}}));
  ASSERT_EQ(login.status, 200u) << login.body;
  const auto body = login.json();
  const std::string token(body.at("access_token").as_string());
  EXPECT_TRUE(std::regex_match(token, std::regex("[0-9a-f]{64}"))) << token;
  EXPECT_EQ(body.at("token_type").as_string(), "bearer");
  EXPECT_EQ(body.at("expires_in_seconds").as_int64(), 3600);
  EXPECT_GE(body.at("expires_unix_ms").as_int64(), before + 3600 * 1000);

  const auto second = anonymous.post("/gateway/auth/session", json_body({{"password", kPassword}}));
  EXPECT_NE(second.json().at("access_token").as_string(), token);

  HttpClient authorized(gateway.port(), token);
  EXPECT_EQ(authorized.post(kSessions, json_body({{"workspace_id", "w"}})).status, 200u);
  // A token one character off (never the same character, or it would be the real token).
  const std::string forged = (token[0] == 'f' ? "0" : "f") + token.substr(1);
  EXPECT_EQ(HttpClient(gateway.port(), forged).get("/gateway/status").error_code(), "unauthorized");
  const auto status = auth_status(authorized);
  EXPECT_EQ(status.at("mode").as_string(), "password-session");
  EXPECT_EQ(status.at("active_sessions").as_int64(), 2);
  EXPECT_EQ(status.at("total_sessions_issued").as_int64(), 2);
  EXPECT_EQ(status.at("auth_failures").as_int64(), 2);  // the wrong password, the forged token
  EXPECT_EQ(gateway.stderr_text().find(kPassword), std::string::npos);
  EXPECT_EQ(gateway.stderr_text().find(token), std::string::npos);
}

// Expiry is covered with an injected clock in the unit tests; this checks the real binary honours
// a short TTL end to end by waiting for the wall clock to pass the announced expiry.
TEST(PasswordSessionAuth, TokensStopWorkingOnceExpired) {
  GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", kPassword,
                          "--session-ttl-seconds", "1"});
  HttpClient anonymous(gateway.port());
  const auto login = anonymous.post("/gateway/auth/session", json_body({{"password", kPassword}}));
  ASSERT_EQ(login.status, 200u);
  const std::string token(login.json().at("access_token").as_string());
  const std::int64_t expires = login.json().at("expires_unix_ms").as_int64();
  HttpClient authorized(gateway.port(), token);
  EXPECT_EQ(authorized.get("/gateway/status").status, 200u);

  std::this_thread::sleep_until(
      std::chrono::system_clock::time_point(std::chrono::milliseconds(expires + 50)));
  const auto expired = authorized.get("/gateway/status");
  EXPECT_EQ(expired.status, 401u);
  EXPECT_EQ(expired.error_code(), "unauthorized");
}

TEST(LocalhostDevAuth, NeedsNoCredentials) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev"});
  HttpClient client(gateway.port());
  EXPECT_EQ(client.post(kSessions, json_body({{"workspace_id", "w"}})).status, 200u);
  EXPECT_EQ(auth_status(client).at("mode").as_string(), "localhost-dev");
  EXPECT_EQ(client.post("/gateway/auth/session", json_body({{"password", "x"}})).error_code(),
            "auth_mode_mismatch");
}

TEST(RateLimit, LimitsEachPrincipalPerWindowWithRetryAfter) {
  // An hour-long window, so the test never straddles a window boundary in practice.
  GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", kPassword,
                          "--rate-limit-window-seconds", "3600", "--rate-limit-max-requests", "3"});
  HttpClient anonymous(gateway.port());
  auto login = [&] {
    const auto response =
        anonymous.post("/gateway/auth/session", json_body({{"password", kPassword}}));
    EXPECT_EQ(response.status, 200u) << response.body;
    return std::string(response.json().at("access_token").as_string());
  };
  HttpClient first(gateway.port(), login());
  HttpClient second(gateway.port(), login());

  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(first.get("/gateway/status").status, 200u);
  const auto limited = first.get("/gateway/status");
  EXPECT_EQ(limited.status, 429u);
  EXPECT_EQ(limited.error_code(), "rate_limited");
  const int retry_after = std::stoi(limited.header("retry-after"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 3600);

  // Another principal has its own window.
  const auto status = second.get("/gateway/status");
  ASSERT_EQ(status.status, 200u);
  EXPECT_EQ(status.json().at("auth").at("rate_limited_requests").as_int64(), 1);

  // The login endpoint is not counted: a request count would lock the right password out along
  // with the guesses. Failed passwords slow the next attempts instead (AuthThrottle below).
  for (int i = 0; i < 3; ++i)
    login();
}

TEST(RateLimit, UnauthorizedRequestsAreRefusedBeforeCountingAgainstTheLimit) {
  GatewayProcess gateway({"--auth-token", kToken, "--rate-limit-window-seconds", "3600",
                          "--rate-limit-max-requests", "2"});
  HttpClient anonymous(gateway.port());
  HttpClient authorized(gateway.port(), kToken);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(anonymous.get("/gateway/status").status, 401u);
  EXPECT_EQ(authorized.get("/gateway/status").status, 200u);
  EXPECT_EQ(authorized.get("/gateway/status").status, 200u);
  EXPECT_EQ(authorized.get("/gateway/status").status, 429u);
}

// Failed passwords and tokens slow the next attempts (issue 17, item 7). What is asserted of time
// is only a lower bound: the gateway spaces attempts out, so a busy machine can only make the
// gaps longer.
using Clock = std::chrono::steady_clock;

std::int64_t milliseconds_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

TEST(AuthThrottle, RotatingSourceAddressesAreSlowedByTheGlobalCount) {
  // Each address stays far below its own free failures; all together pass the global ones.
  GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", kPassword,
                          "--auth-failures-free", "100", "--auth-failures-free-global", "3"});
  const HttpClient anonymous(gateway.port());
  const auto guess = [&](int address) {
    return anonymous.from_address("127.0.1." + std::to_string(address))
        .post("/gateway/auth/session", json_body({{"password", "wrong"}}));
  };
  for (int address = 1; address <= 4; ++address)
    EXPECT_EQ(guess(address).status, 401u);
  // Past 3 failures the attempts are spaced 250 ms, then 500 ms apart, whatever their address:
  // the 5th, 6th and 7th guesses start at least 750 ms apart.
  const auto fifth = Clock::now();
  for (int address = 5; address <= 7; ++address)
    EXPECT_EQ(guess(address).status, 401u);
  EXPECT_GE(milliseconds_since(fifth), 750);
  // The right password, from yet another address, waits its turn and gets in.
  const auto right = anonymous.from_address("127.0.1.8")
                         .post("/gateway/auth/session", json_body({{"password", kPassword}}));
  EXPECT_EQ(right.status, 200u) << right.body;
  const auto auth =
      HttpClient(gateway.port(), std::string(right.json().at("access_token").as_string()))
          .get("/gateway/status")
          .json()
          .at("auth");
  EXPECT_EQ(auth.at("auth_failures").as_int64(), 7);
}

TEST(AuthThrottle, AThrottledAddressStillGetsInWithTheRightPassword) {
  // Before, the per-address request limit refused every login for the rest of the window.
  GatewayProcess gateway({"--auth-mode", "password-session", "--auth-password", kPassword,
                          "--rate-limit-max-requests", "3", "--auth-failures-free", "2"});
  const HttpClient anonymous(gateway.port());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(anonymous.post("/gateway/auth/session", json_body({{"password", "wrong"}})).status,
              401u);
  }
  // 3 failures, 2 free: the next attempt and the one after it start at least 250 ms apart.
  const auto fourth = Clock::now();
  EXPECT_EQ(anonymous.post("/gateway/auth/session", json_body({{"password", "wrong"}})).status,
            401u);
  const auto right = anonymous.post("/gateway/auth/session", json_body({{"password", kPassword}}));
  EXPECT_GE(milliseconds_since(fourth), 250);
  EXPECT_EQ(right.status, 200u) << right.body;
  // Another address was never slowed.
  EXPECT_EQ(anonymous.from_address("127.0.2.1")
                .post("/gateway/auth/session", json_body({{"password", kPassword}}))
                .status,
            200u);
}

TEST(AuthThrottle, FailedBearerTokensAreThrottledPerAddress) {
  GatewayProcess gateway({"--auth-token", kToken, "--auth-failures-free", "2"});
  const HttpClient guesser = HttpClient(gateway.port(), "not-the-token").from_address("127.0.3.1");
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(guesser.get("/gateway/status").status, 401u);
  // 4 failures: attempts 500 ms apart from that address; the right token waits its turn too.
  const auto start = Clock::now();
  EXPECT_EQ(guesser.get("/gateway/status").status, 401u);
  const auto status =
      HttpClient(gateway.port(), kToken).from_address("127.0.3.1").get("/gateway/status");
  EXPECT_GE(milliseconds_since(start), 500);
  EXPECT_EQ(status.status, 200u);
}

}  // namespace
}  // namespace tau::test
