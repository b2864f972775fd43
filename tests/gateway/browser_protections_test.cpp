// The browser protections end to end (issue 17, item 1; docs/browser-protections.md): the exact
// requests a hostile page in the developer's browser could make against a localhost-dev gateway,
// and the CORS answers a dashboard hosted on a listed origin relies on. The rules themselves are
// unit-tested in tests/http/browser_policy_test.cpp; here the real binary applies them.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

const std::string kEvil = "http://evil.example";

std::size_t session_count(const HttpClient& client) {
  return client.get(kSessions).json().at("sessions").as_array().size();
}

std::string status_of(const HttpClient& client, const std::string& session_id) {
  return std::string(
      client.get(session_path(session_id)).json().at("session").at("status").as_string());
}

class LocalhostDevAttacks : public ::testing::Test {
 protected:
  GatewayProcess gateway{{"--auth-mode", "localhost-dev"}};
  HttpClient client{gateway.port()};
};

TEST_F(LocalhostDevAttacks, ACrossSiteSimplePostCannotOpenASession) {
  // What a page's <form> or fetch(..., {mode: 'no-cors'}) sends: no preflight is asked for.
  const auto attack = client.post(kSessions, json_body({{"workspace_id", "pwned"}}),
                                  {{"Origin", kEvil}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(attack.status, 403u) << attack.body;
  EXPECT_EQ(attack.error_code(), "origin_not_allowed");
  EXPECT_EQ(attack.header("access-control-allow-origin"), "");
  // The opaque origin of a sandboxed frame or a file:// page is refused too.
  EXPECT_EQ(client
                .post(kSessions, json_body({{"workspace_id", "pwned"}}),
                      {{"Origin", "null"}, {"Content-Type", "text/plain"}})
                .error_code(),
            "origin_not_allowed");
  EXPECT_EQ(session_count(client), 0u);
}

TEST_F(LocalhostDevAttacks, ABodyThatIsNotJsonIsRefusedWhateverItsOrigin) {
  // Browsers that send no Origin (older ones, some navigations) still cannot post a form.
  for (const std::string type :
       {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/json; charset=latin1"}) {
    const auto response =
        client.post(kSessions, json_body({{"workspace_id", "pwned"}}), {{"Content-Type", type}});
    EXPECT_EQ(response.status, 415u) << type;
    EXPECT_EQ(response.error_code(), "unsupported_media_type") << type;
  }
  EXPECT_EQ(session_count(client), 0u);
  // JSON with its parameters is what every client sends, and it works.
  EXPECT_EQ(client
                .post(kSessions, json_body({{"workspace_id", "ok"}}),
                      {{"Content-Type", "Application/JSON; charset=UTF-8"}})
                .status,
            200u);
}

TEST_F(LocalhostDevAttacks, ACrossSiteReapWithAHugeClockTimesNothingOut) {
  const std::string id = open_session(client, "victim");
  const auto attack =
      client.post(kSessions + "/reap", json_body({{"now_unix_ms", 9000000000000000000LL}}),
                  {{"Origin", kEvil}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(attack.status, 403u) << attack.body;
  EXPECT_EQ(status_of(client, id), "running");
}

TEST_F(LocalhostDevAttacks, ARebindingHostCannotReadSessionsOrReachTheAgent) {
  const std::string id = open_session(client, "victim");
  // After rebinding evil.example to 127.0.0.1 the page is same-origin with itself: its requests
  // carry Host: evil.example:<port> and no Origin (a GET) or its own (a POST).
  const std::string rebound = "evil.example:" + std::to_string(gateway.port());
  const auto read = client.get(kSessions, {{"Host", rebound}});
  EXPECT_EQ(read.status, 421u) << read.body;
  EXPECT_EQ(read.error_code(), "host_not_allowed");
  EXPECT_EQ(read.body.find(id), std::string::npos);
  const auto followup =
      client.post(session_path(id, "/followups"), json_body({{"message", "rm -rf ~"}}),
                  {{"Host", rebound}, {"Origin", "http://" + rebound}});
  EXPECT_EQ(followup.status, 421u) << followup.body;
  const auto drained = client.post(session_path(id, "/followups/drain"), "{}").json();
  EXPECT_TRUE(drained.at("followups").as_array().empty());
  // The loopback names with the gateway's port are its own.
  for (const std::string host : {"127.0.0.1", "localhost", "[::1]"}) {
    EXPECT_EQ(client.get(kSessions, {{"Host", host + ":" + std::to_string(gateway.port())}}).status,
              200u)
        << host;
  }
  EXPECT_EQ(client.get(kSessions, {{"Host", "localhost:1"}}).status, 421u);
}

TEST_F(LocalhostDevAttacks, TheGatewaysOwnPagesAreSameOriginAndWork) {
  // The dashboard's fetches carry its own origin.
  const std::string self = "127.0.0.1:" + std::to_string(gateway.port());
  const auto opened = client.post(kSessions, json_body({{"workspace_id", "mine"}}),
                                  {{"Host", self}, {"Origin", "http://" + self}});
  EXPECT_EQ(opened.status, 200u) << opened.body;
  // Same origin needs no CORS headers.
  EXPECT_EQ(opened.header("access-control-allow-origin"), "");
}

TEST(AllowedHosts, AnAllowedHostIsAnsweredBesidesTheDefaults) {
  GatewayProcess gateway({"--auth-token", "t", "--allowed-host", "gateway.internal"});
  HttpClient client(gateway.port(), "t");
  EXPECT_EQ(client.get("/gateway/status", {{"Host", "gateway.internal"}}).status, 200u);
  EXPECT_EQ(client.get("/gateway/status", {{"Host", "GATEWAY.internal:443"}}).status, 200u);
  EXPECT_EQ(client.get("/gateway/status", {{"Host", "other.internal"}}).status, 421u);
  EXPECT_EQ(client.get("/gateway/status").status, 200u);  // 127.0.0.1:<port>
}

TEST(AllowedHosts, BadValuesAreRefusedAtStart) {
  const auto host = run_gateway_to_exit({"--auth-token", "t", "--allowed-host", "a b"});
  EXPECT_EQ(host.exit_code, 2);
  EXPECT_NE(host.stderr_text.find("--allowed-host: 'a b'"), std::string::npos) << host.stderr_text;
  const auto origin =
      run_gateway_to_exit({"--auth-token", "t", "--cors-origin", "https://app.example/path"});
  EXPECT_EQ(origin.exit_code, 2);
  EXPECT_NE(origin.stderr_text.find("--cors-origin"), std::string::npos) << origin.stderr_text;
}

class ListedOrigin : public ::testing::Test {
 protected:
  const std::string origin = "https://dashboard.example:8443";
  GatewayProcess gateway{{"--auth-token", "secret", "--cors-origin", origin}};
  HttpClient client{gateway.port(), "secret"};
};

TEST_F(ListedOrigin, APreflightIsAnsweredWithTheRouteMethodsAndHeaders) {
  const auto preflight =
      HttpClient(gateway.port())
          .request("OPTIONS", kSessions, std::nullopt,
                   {{"Origin", origin},
                    {"Access-Control-Request-Method", "POST"},
                    {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(preflight.status, 204u) << preflight.body;
  EXPECT_EQ(preflight.header("access-control-allow-origin"), origin);
  EXPECT_NE(preflight.header("access-control-allow-methods").find("POST"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-methods").find("GET"), std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-headers").find("Authorization"),
            std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-headers").find("Content-Type"),
            std::string::npos);
  EXPECT_NE(preflight.header("vary").find("Origin"), std::string::npos);
  EXPECT_EQ(preflight.body, "");
  // Another origin's preflight is refused, and an OPTIONS that is not a preflight is a 405.
  EXPECT_EQ(HttpClient(gateway.port())
                .request("OPTIONS", kSessions, std::nullopt,
                         {{"Origin", kEvil}, {"Access-Control-Request-Method", "POST"}})
                .status,
            403u);
  EXPECT_EQ(HttpClient(gateway.port()).request("OPTIONS", kSessions, std::nullopt).status, 405u);
}

TEST_F(ListedOrigin, EveryAnswerCarriesTheCorsHeadersIncludingErrorsAndStreams) {
  const auto opened =
      client.post(kSessions, json_body({{"workspace_id", "remote"}}), {{"Origin", origin}});
  ASSERT_EQ(opened.status, 200u) << opened.body;
  EXPECT_EQ(opened.header("access-control-allow-origin"), origin);
  EXPECT_NE(opened.header("vary").find("Origin"), std::string::npos);
  const std::string id(opened.json().at("session").at("session_id").as_string());

  // A 401 must be readable by the page, or it cannot tell a bad token from a network failure.
  const auto unauthorized = HttpClient(gateway.port()).get(kSessions, {{"Origin", origin}});
  EXPECT_EQ(unauthorized.status, 401u);
  EXPECT_EQ(unauthorized.header("access-control-allow-origin"), origin);

  SseStream stream(gateway.port(), session_path(id, "/stream?access_token=secret"),
                   {{"Origin", origin}});
  EXPECT_EQ(stream.head().status, 200u);
  EXPECT_EQ(stream.head().header("access-control-allow-origin"), origin);

  // Without an Origin (curl, an SDK) nothing changes.
  EXPECT_EQ(client.get(kSessions).header("access-control-allow-origin"), "");
}

}  // namespace
}  // namespace tau::test
