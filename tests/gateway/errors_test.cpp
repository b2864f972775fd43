// Every documented error code over HTTP, each answered in the error envelope while the gateway
// keeps serving.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

class ErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { id = open_session(client, "errors"); }
  void TearDown() override {
    EXPECT_EQ(client.get(session_path(id)).status, 200u) << "the gateway stopped serving";
  }

  void expect_error(const HttpResponse& response, unsigned status, const std::string& code,
                    const std::string& what) {
    EXPECT_EQ(response.status, status) << what << ": " << response.body;
    EXPECT_EQ(response.error_code(), code) << what;
  }

  // max-input-chars 100: bodies over 800 bytes are refused.
  GatewayProcess gateway{{"--auth-mode", "localhost-dev", "--max-input-chars", "100"}};
  HttpClient client{gateway.port()};
  std::string id;
};

TEST_F(ErrorsTest, UnknownPathsAre404AndWrongMethodsAre405WithAllow) {
  expect_error(client.get("/nope"), 404, "not_found", "unknown path");
  expect_error(client.get("/gateway/status/"), 404, "not_found", "trailing slash");
  expect_error(client.get(session_path(id, "/unknown")), 404, "not_found", "unknown action");

  const auto wrong_method = client.post("/gateway/status", "{}");
  expect_error(wrong_method, 405, "method_not_allowed", "POST status");
  EXPECT_EQ(wrong_method.header("allow"), "GET, HEAD");
  const auto delete_session = client.request("DELETE", session_path(id), std::nullopt);
  expect_error(delete_session, 405, "method_not_allowed", "DELETE session");
  EXPECT_EQ(delete_session.header("allow"), "GET, HEAD");
  EXPECT_EQ(client.get(session_path(id, "/close")).header("allow"), "POST");
}

TEST(RoutingBeforeAuth, UnknownPathsAndMethodsAnswerWithoutCredentials) {
  GatewayProcess gateway({"--auth-token", "secret-token"});
  HttpClient anonymous(gateway.port());
  EXPECT_EQ(anonymous.get("/nope").error_code(), "not_found");
  EXPECT_EQ(anonymous.post("/gateway/status", "{}").error_code(), "method_not_allowed");
  EXPECT_EQ(anonymous.get("/gateway/status").error_code(), "unauthorized");
}

TEST_F(ErrorsTest, UnknownSessionIdsAre404OnEveryRoute) {
  for (const auto& [method, suffix] :
       std::vector<std::pair<std::string, std::string>>{{"GET", ""},
                                                        {"POST", "/progress"},
                                                        {"POST", "/followups"},
                                                        {"POST", "/followups/drain"},
                                                        {"GET", "/stream"},
                                                        {"POST", "/close"}}) {
    const std::optional<std::string> body =
        method == "POST" ? std::optional<std::string>(json_body({{"message", "m"}})) : std::nullopt;
    expect_error(client.request(method, session_path("eca_unknown", suffix), body), 404,
                 "external_coding_agent_session_not_found", method + suffix);
  }
  // A percent-encoded slash stays inside the id instead of reaching another route.
  expect_error(client.get(session_path(id + "%2Fclose")), 404,
               "external_coding_agent_session_not_found", "encoded slash");
}

TEST_F(ErrorsTest, MalformedBodiesNameTheProblem) {
  const std::string progress = session_path(id, "/progress");
  for (const std::string body : {"", "not json", "{\"message\":", "[]", "\"message\"", "null", "{}",
                                 "{\"message\":5}", "{\"message\":null}"}) {
    expect_error(client.post(progress, body), 400, "malformed_json", "progress body " + body);
  }
  const auto missing = client.post(kSessions, "{}");
  expect_error(missing, 400, "malformed_json", "missing workspace_id");
  EXPECT_NE(missing.json().at("error").at("message").as_string().find("workspace_id"),
            json::string::npos);
  const auto wrong_type = client.post(kSessions, R"({"workspace_id":["a"]})");
  EXPECT_NE(wrong_type.json().at("error").at("message").as_string().find("string"),
            json::string::npos);
  const auto invalid_utf8 = client.post(progress, "{\"message\":\"\xff\xfe\"}");
  expect_error(invalid_utf8, 400, "malformed_json", "invalid UTF-8");
}

TEST_F(ErrorsTest, DrainLimitMustBeAnIntegerFromOneToAMillion) {
  const std::string drain = session_path(id, "/followups/drain");
  for (const std::string limit :
       {"0", "-1", "1.5", "1.0", "\"5\"", "1000001", "18446744073709551616", "null", "true"}) {
    expect_error(client.post(drain, "{\"limit\":" + limit + "}"), 400, "malformed_json",
                 "limit " + limit);
  }
  EXPECT_EQ(client.post(drain, R"({"limit":1})").status, 200u);
  EXPECT_EQ(client.post(drain, R"({"limit":1000000})").status, 200u);
  EXPECT_EQ(client.post(drain, "").status, 200u);
  expect_error(client.post(drain, "[1]"), 400, "malformed_json", "array body");
}

TEST_F(ErrorsTest, ReapNowMustBeANonNegativeInteger) {
  const std::string reap = "/gateway/external-coding-agent/reap";
  for (const std::string now : {"-1", "1.5", "\"1\""}) {
    expect_error(client.post(reap, "{\"now_unix_ms\":" + now + "}"), 400, "malformed_json",
                 "now " + now);
  }
}

TEST_F(ErrorsTest, EmptyWorkspaceIdsAndMessagesAreRefused) {
  expect_error(client.post(kSessions, json_body({{"workspace_id", " \t\n "}})), 400,
               "invalid_workspace_id", "blank workspace");
  expect_error(client.post(kSessions, json_body({{"workspace_id", ""}})), 400,
               "invalid_workspace_id", "empty workspace");
  expect_error(client.post(session_path(id, "/progress"), json_body({{"message", "  "}})), 400,
               "invalid_message", "blank progress");
  expect_error(client.post(session_path(id, "/followups"), json_body({{"message", ""}})), 400,
               "invalid_message", "empty follow-up");
}

TEST_F(ErrorsTest, BodiesOverEightTimesMaxInputCharsAre413) {
  const std::string fits = json_body({{"message", std::string(780, 'a')}});
  ASSERT_LE(fits.size(), 800u);
  EXPECT_EQ(client.post(session_path(id, "/progress"), fits).status, 200u);
  const std::string too_big = json_body({{"message", std::string(800, 'a')}});
  expect_error(client.post(session_path(id, "/progress"), too_big), 413, "input_too_large",
               "801+ bytes");

  // A chunked body is measured as it arrives.
  const std::string chunk(900, 'a');
  std::ostringstream chunked;
  chunked << "POST " << session_path(id, "/progress") << " HTTP/1.1\r\nHost: x\r\n"
          << "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
          << std::hex << chunk.size() << "\r\n"
          << chunk << "\r\n0\r\n\r\n";
  const std::string answer = raw_exchange(gateway.port(), chunked.str());
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("input_too_large"), std::string::npos);
}

TEST_F(ErrorsTest, ProgressOnAnEndedSessionIs409) {
  ASSERT_EQ(client.post(session_path(id, "/close"), "").status, 200u);
  expect_error(client.post(session_path(id, "/progress"), json_body({{"message", "m"}})), 409,
               "external_coding_agent_session_not_running", "closed session");
  // Reopen for TearDown's liveness check.
  id = open_session(client, "errors");
}

TEST_F(ErrorsTest, InvalidRequestTargetIs400) {
  const std::string answer = raw_exchange(gateway.port(),
                                          "GET /gateway/status?a=%zz HTTP/1.1\r\nHost: x\r\n"
                                          "Connection: close\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("invalid_target"), std::string::npos) << answer;
}

TEST_F(ErrorsTest, KeepAliveConnectionsServeSeveralRequests) {
  const std::string request = "GET " + session_path(id) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string last = "GET /gateway/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string answer = raw_exchange(gateway.port(), request + request + last);
  std::size_t responses = 0;
  for (std::size_t at = answer.find("HTTP/1.1 200"); at != std::string::npos;
       at = answer.find("HTTP/1.1 200", at + 1)) {
    ++responses;
  }
  EXPECT_EQ(responses, 3u) << answer;
}

}  // namespace
}  // namespace tau::test
