// The access log and the log options, against the real binary's stderr.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
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

// Whether a whole access line (up to its newline: stderr may arrive mid-line) names `route`.
bool has_route(const std::string& text, const std::string& route) {
  const auto at = text.find("\"route\":\"" + route + "\"");
  return at != std::string::npos && text.find('\n', at) != std::string::npos;
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

  const std::string text =
      gateway.wait_for_stderr([](const std::string& text) { return has_route(text, "/healthz"); });
  const auto records = access_records(text);
  ASSERT_EQ(records.size(), 4u) << text;

  const json::object& open = records[0];
  EXPECT_EQ(open.at("method"), "POST");
  EXPECT_EQ(open.at("route"), "/gateway/external-coding-agent/sessions");
  EXPECT_EQ(open.at("status"), 200);
  EXPECT_EQ(open.at("principal"), "token");

  const json::object& append = records[1];
  EXPECT_EQ(append.at("route"), "/gateway/external-coding-agent/sessions/{session_id}/progress");
  EXPECT_EQ(append.at("bytes").to_number<std::uint64_t>(), progress.body.size());
  EXPECT_GE(append.at("duration_ms").to_number<double>(), 0.0);
  EXPECT_FALSE(append.at("time").as_string().empty());
  EXPECT_EQ(append.at("level"), "info");

  EXPECT_EQ(records[2].at("status"), 401);
  EXPECT_EQ(records[2].at("principal"), "anonymous");
  EXPECT_EQ(records[3].at("route"), "/healthz");
  // Ids live in paths, never in the log's route field.
  EXPECT_EQ(text.find("/sessions/" + session), std::string::npos);
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
