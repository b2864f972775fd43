// The access log and the log options, against the real binary's stderr.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);)
    lines.push_back(line);
  return lines;
}

// The access-log records in JSON-format stderr; fails the test on any line that is not JSON.
std::vector<json::object> access_records(const std::string& stderr_text) {
  std::vector<json::object> records;
  for (const auto& line : lines_of(stderr_text)) {
    boost::system::error_code error;
    json::value value = json::parse(line, error);
    EXPECT_FALSE(error) << "not a JSON line: " << line;
    if (!error && value.as_object().at("log") == "access")
      records.push_back(value.as_object());
  }
  return records;
}

TEST(AccessLog, OneJsonLinePerRequestWithTheRouteTemplateNeverTheRawPath) {
  GatewayProcess gateway({"--auth-token", "secret"});
  HttpClient client(gateway.port(), "secret");
  const std::string session = open_session(client, "repo");
  const auto progress =
      client.post(session_path(session, "/progress"), json_body({{"message", "hello"}}));
  ASSERT_EQ(progress.status, 200u);
  EXPECT_EQ(HttpClient(gateway.port()).get(kSessions).status, 401u);
  EXPECT_EQ(client.get("/healthz").status, 200u);

  // A request is logged just after its answer, so lines of requests on different connections
  // may come in either order: wait for all four complete lines.
  const std::string text = gateway.wait_for_stderr([](const std::string& text) {
    std::size_t complete = 0;
    for (auto at = text.find("\"log\":\"access\""); at != std::string::npos;
         at = text.find("\"log\":\"access\"", at + 1)) {
      if (text.find('\n', at) != std::string::npos)
        ++complete;
    }
    return complete >= 4;
  });
  auto records = access_records(text);
  ASSERT_EQ(records.size(), 4u) << text;
  auto by_route_and_status = [&](const std::string& route, int status) {
    for (const auto& record : records) {
      if (record.at("route") == json::string_view(route) && record.at("status") == status)
        return record;
    }
    ADD_FAILURE() << "no access line for " << route << " " << status << " in:\n" << text;
    return json::object{};
  };

  const json::object open = by_route_and_status("/gateway/external-coding-agent/sessions", 200);
  EXPECT_EQ(open.at("method"), "POST");
  EXPECT_EQ(open.at("principal"), "token");

  const json::object append =
      by_route_and_status("/gateway/external-coding-agent/sessions/{session_id}/progress", 200);
  EXPECT_EQ(append.at("method"), "POST");
  EXPECT_EQ(append.at("bytes").to_number<std::uint64_t>(), progress.body.size());
  EXPECT_GE(append.at("duration_ms").to_number<double>(), 0.0);
  // As docs/api.md shows it: milliseconds with three decimals, never an exponent.
  EXPECT_TRUE(std::regex_search(text, std::regex(R"("duration_ms":[0-9]+\.[0-9]{3},"bytes":)")))
      << text;
  EXPECT_FALSE(append.at("time").as_string().empty());
  EXPECT_EQ(append.at("level"), "info");

  const json::object refused = by_route_and_status("/gateway/external-coding-agent/sessions", 401);
  EXPECT_EQ(refused.at("method"), "GET");
  EXPECT_EQ(refused.at("principal"), "anonymous");
  EXPECT_EQ(by_route_and_status("/healthz", 200).at("principal"), "anonymous");
  // Ids live in paths, never in the log's route field.
  EXPECT_EQ(text.find("/sessions/" + session), std::string::npos);
}

// Whether `text` holds a complete access line for `route`.
bool has_access_line(const std::string& text, const std::string& route) {
  const std::string needle = "\"route\":\"" + route + "\"";
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    if (text.find('\n', at) != std::string::npos)
      return true;
  }
  return false;
}

// A follow stream's line says what the stream was, so it is written when the stream ends (with
// every byte written live), not when it went live (its handler returned then).
TEST(AccessLog, AFollowStreamIsLoggedWhenItEndsWithEveryByteItWrote) {
  GatewayProcess gateway({"--auth-token", "secret"});
  HttpClient client(gateway.port(), "secret");
  const std::string session = open_session(client, "repo");
  const std::string stream_route = "/gateway/external-coding-agent/sessions/{session_id}/stream";
  const std::string session_route = "/gateway/external-coding-agent/sessions/{session_id}";
  {
    SseStream stream(gateway.port(), session_path(session, "/stream?follow=true"),
                     {{"Authorization", "Bearer secret"}});
    ASSERT_EQ(stream.head().status, 200u);
    ASSERT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
    const std::string large(20000, 'x');
    ASSERT_EQ(
        client.post(session_path(session, "/progress"), json_body({{"message", large}})).status,
        200u);
    ASSERT_EQ(json::parse(stream.next_message()->data).at("message"), json::string_view(large));
    // Lines are handed over in the order requests end: once the line of a request made after
    // the stream went live is out, a line the stream had written on going live would be out too.
    ASSERT_EQ(client.get(session_path(session)).status, 200u);
    const std::string before_end = gateway.wait_for_stderr(
        [&](const std::string& text) { return has_access_line(text, session_route); });
    EXPECT_FALSE(has_access_line(before_end, stream_route)) << before_end;
    ASSERT_EQ(client.post(session_path(session, "/close"), "").status, 200u);
    while (const auto message = stream.next_message()) {
      if (message->event == "done")
        break;
    }
  }
  const std::string text = gateway.wait_for_stderr(
      [&](const std::string& text) { return has_access_line(text, stream_route); });
  for (const auto& record : access_records(text)) {
    if (record.at("route") != json::string_view(stream_route))
      continue;
    EXPECT_EQ(record.at("status"), 200);
    EXPECT_EQ(record.at("method"), "GET");
    EXPECT_GT(record.at("bytes").to_number<std::uint64_t>(), 20000u);
  }
}

TEST(AccessLog, StartupPrintsTheConfigurationWithSecretsRedacted) {
  GatewayProcess gateway({"--auth-token", "very-secret-token", "--worker-env", "API_KEY=hunter2",
                          "--worker-command", "/bin/cat"});
  const std::string text = gateway.stderr_text();
  EXPECT_NE(text.find("auth_token=<redacted>"), std::string::npos) << text;
  EXPECT_NE(text.find("worker_env=API_KEY"), std::string::npos) << text;
  EXPECT_EQ(text.find("very-secret-token"), std::string::npos);
  EXPECT_EQ(text.find("hunter2"), std::string::npos);
}

TEST(AccessLog, TextFormatIsForPeople) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--log-format", "text"});
  HttpClient client(gateway.port());
  EXPECT_EQ(client.get("/healthz").status, 200u);
  const std::string text = gateway.wait_for_stderr([](const std::string& text) {
    const auto at = text.find(" GET /healthz 200 ");
    return at != std::string::npos && text.find('\n', at) != std::string::npos;
  });
  EXPECT_NE(text.find(" info access GET /healthz 200 "), std::string::npos) << text;
  EXPECT_NE(text.find("principal=anonymous"), std::string::npos) << text;
  // The duration to the microsecond, then the answer's bytes.
  EXPECT_TRUE(std::regex_search(
      text, std::regex(R"( info access GET /healthz 200 [0-9]+\.[0-9]{3}ms [0-9]+B principal=)")))
      << text;
  EXPECT_EQ(text.find("{\"time\""), std::string::npos) << text;
}

TEST(AccessLog, LogLevelWarnKeepsOnlyWarningsAndWorse) {
  // A gateway that cannot start logs why at `critical` and exits, and every line queued before
  // the exit is written: the info lines that would precede it must be missing, not lost.
  TempDir state;
  std::ofstream(state.path() + "/gateway.db", std::ios::binary) << std::string(8192, 'x');
  const auto quiet = run_gateway_to_exit(
      {"--auth-mode", "localhost-dev", "--state-dir", state.path(), "--log-level", "warn"});
  EXPECT_EQ(quiet.exit_code, 1);
  EXPECT_NE(quiet.stderr_text.find("\"level\":\"critical\""), std::string::npos)
      << quiet.stderr_text;
  EXPECT_EQ(quiet.stderr_text.find("configuration:"), std::string::npos) << quiet.stderr_text;

  const auto verbose =
      run_gateway_to_exit({"--auth-mode", "localhost-dev", "--state-dir", state.path()});
  EXPECT_NE(verbose.stderr_text.find("configuration:"), std::string::npos) << verbose.stderr_text;
}

TEST(AccessLog, BadLogOptionsAreRefused) {
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--log-level", "loud"}, {"--log-format", "xml"}}) {
    const auto result = run_gateway_to_exit({"--auth-mode", "localhost-dev", flag, value});
    EXPECT_EQ(result.exit_code, 2) << flag;
    EXPECT_NE(result.stderr_text.find(flag), std::string::npos) << result.stderr_text;
  }
}

}  // namespace
}  // namespace tau::test
