// GET /metrics against the real binary: Prometheus' own checker accepts the output, the counters
// follow what was done, and route labels are templates, never raw ids.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

// The value of the sample with exactly this name and label text (e.g. `{status="running"}`).
std::optional<double> sample(const std::string& metrics, const std::string& series) {
  const std::string prefix = series + " ";
  std::size_t at = 0;
  while ((at = metrics.find(prefix, at)) != std::string::npos) {
    if (at == 0 || metrics[at - 1] == '\n') {
      const auto end = metrics.find('\n', at);
      return std::stod(metrics.substr(at + prefix.size(), end - at - prefix.size()));
    }
    at += prefix.size();
  }
  return std::nullopt;
}

// Requests other than scrapes counted so far.
double requests_counted(const std::string& metrics) {
  double total = 0;
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("tau_gateway_http_requests_total{") &&
        line.find("route=\"/metrics\"") == std::string::npos)
      total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

// A request is counted just after its answer is sent, so a scrape right after an answer may
// not count it yet: scrape until `ready` holds (at most 10 s).
std::string scrape_when(const HttpClient& client,
                        const std::function<bool(const std::string&)>& ready) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string metrics;
  do {
    metrics = client.get("/metrics").body;
  } while (!ready(metrics) && std::chrono::steady_clock::now() < until);
  return metrics;
}

// Runs `promtool check metrics` on the text; returns its exit code and output.
std::pair<int, std::string> promtool_check(const std::string& metrics) {
  TempDir dir;
  const std::string input = dir.path() + "/metrics.txt";
  const std::string output = dir.path() + "/promtool.out";
  std::ofstream(input) << metrics;
  const std::string command =
      std::string(TAU_PROMTOOL) + " check metrics < " + input + " > " + output + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream file(output);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

TEST(Metrics, PromtoolAcceptsTheOutputAndCountersFollowTheRequests) {
  ASSERT_EQ(::access(TAU_PROMTOOL, X_OK), 0)
      << TAU_PROMTOOL << " is missing: `make test` installs it (Debian's prometheus package)";
  GatewayProcess gateway({"--auth-token", "secret"});
  HttpClient client(gateway.port(), "secret");
  const std::string session = open_session(client, "repo");
  for (const char* message : {"one", "two"})
    ASSERT_EQ(
        client.post(session_path(session, "/progress"), json_body({{"message", message}})).status,
        200u);
  ASSERT_EQ(
      client.post(session_path(session, "/followups"), json_body({{"message", "next"}})).status,
      200u);
  ASSERT_EQ(client.post(session_path(session, "/followups/drain"), "").status, 200u);
  const std::string closed = open_session(client, "other");
  ASSERT_EQ(client.post(session_path(closed, "/close"), "").status, 200u);
  EXPECT_EQ(client.get(session_path("no-such-session")).status, 404u);
  EXPECT_EQ(client.get("/no/such/route").status, 404u);
  EXPECT_EQ(HttpClient(gateway.port(), "wrong").get(kSessions).status, 401u);

  const auto response = client.get("/metrics");
  ASSERT_EQ(response.status, 200u) << response.body;
  EXPECT_EQ(response.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  // open, 2 progress, follow-up, drain, open, close, two 404s and a 401.
  const std::string metrics =
      scrape_when(client, [](const std::string& text) { return requests_counted(text) >= 10; });

  const auto [code, problems] = promtool_check(metrics);
  EXPECT_EQ(code, 0) << problems << "\n" << metrics;
  EXPECT_EQ(problems, "");

  EXPECT_EQ(sample(metrics, R"(tau_gateway_sessions{status="running"})"), 1);
  EXPECT_EQ(sample(metrics, R"(tau_gateway_sessions{status="closed"})"), 1);
  EXPECT_EQ(sample(metrics, R"(tau_gateway_sessions{status="failed"})"), 0);
  EXPECT_EQ(sample(metrics, "tau_gateway_events_appended_total"), 3);  // 2 progress, 1 follow-up
  EXPECT_EQ(sample(metrics, "tau_gateway_followups_queued_total"), 1);
  EXPECT_EQ(sample(metrics, "tau_gateway_followups_drained_total"), 1);
  EXPECT_EQ(sample(metrics, "tau_gateway_auth_failures_total"), 1);
  EXPECT_EQ(sample(metrics, "tau_gateway_open_streams"), 0);
  EXPECT_EQ(sample(metrics, "tau_gateway_store_failed"), 0);

  const std::string progress_route =
      "/gateway/external-coding-agent/sessions/{session_id}/progress";
  EXPECT_EQ(sample(metrics, R"(tau_gateway_http_requests_total{method="POST",route=")" +
                                progress_route + R"(",code="2xx"})"),
            2);
  EXPECT_EQ(
      sample(metrics, R"(tau_gateway_http_request_duration_seconds_count{method="POST",route=")" +
                          progress_route + R"("})"),
      2);
  // The unknown session is counted under its template; the unknown path under "unmatched".
  EXPECT_EQ(
      sample(
          metrics,
          R"(tau_gateway_http_requests_total{method="GET",route="/gateway/external-coding-agent/sessions/{session_id}",code="4xx"})"),
      1);
  EXPECT_EQ(sample(metrics,
                   R"(tau_gateway_http_requests_total{method="ANY",route="unmatched",code="4xx"})"),
            1);
  EXPECT_EQ(
      sample(
          metrics,
          R"(tau_gateway_http_requests_total{method="GET",route="/gateway/external-coding-agent/sessions",code="4xx"})"),
      1);
  // No raw id ever becomes a label.
  for (const std::string& id : {session, closed, std::string("no-such-session")})
    EXPECT_EQ(metrics.find(id), std::string::npos) << id;
  EXPECT_EQ(metrics.find("/no/such/route"), std::string::npos);

  // Every commit of the durable store was timed.
  const auto commits = sample(metrics, "tau_gateway_store_commit_duration_seconds_count");
  ASSERT_TRUE(commits.has_value());
  EXPECT_GE(*commits, 1);
}

TEST(Metrics, NeedTheTokenUnlessPublic) {
  GatewayProcess gateway({"--auth-token", "secret"});
  const auto anonymous = HttpClient(gateway.port()).get("/metrics");
  EXPECT_EQ(anonymous.status, 401u);
  EXPECT_EQ(anonymous.json().at("error").at("code"), "unauthorized");

  GatewayProcess open_gateway({"--auth-token", "secret", "--metrics-public"});
  EXPECT_EQ(HttpClient(open_gateway.port()).get("/metrics").status, 200u);
  // Public metrics open nothing else.
  EXPECT_EQ(HttpClient(open_gateway.port()).get(kSessions).status, 401u);
}

TEST(Metrics, StreamsAndWorkersAreCounted) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--worker-command", "/bin/cat"});
  HttpClient client(gateway.port());
  const std::string session = open_session(client, "repo");
  auto metrics = client.get("/metrics").body;
  EXPECT_EQ(sample(metrics, "tau_gateway_worker_processes"), 1);
  EXPECT_EQ(sample(metrics, "tau_gateway_worker_exits_total"), 0);

  // A finished replay stream is counted once under the stream template.
  ASSERT_EQ(client.get(session_path(session, "/stream")).status, 200u);
  ASSERT_EQ(client.post(session_path(session, "/close"), "").status, 200u);
  metrics = scrape_when(client, [](const std::string& text) {
    return text.find("sessions/{session_id}/stream\",code=\"2xx\"}") != std::string::npos;
  });
  EXPECT_EQ(
      sample(
          metrics,
          R"(tau_gateway_http_requests_total{method="GET",route="/gateway/external-coding-agent/sessions/{session_id}/stream",code="2xx"})"),
      1);
  EXPECT_EQ(sample(metrics, "tau_gateway_open_streams"), 0);
}

}  // namespace
}  // namespace tau::test
