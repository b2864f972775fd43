// The session lifecycle over HTTP against the real binary: open, reuse, progress, follow-ups,
// drain, close, reopen, limits, reaping and status.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

TEST(Lifecycle, WholeSessionFromOpenToReopen) {
  GatewayProcess gateway;
  HttpClient client(gateway.port());

  auto opened = client.post(kSessions, json_body({{"workspace_id", "  repo-a  "}}));
  ASSERT_EQ(opened.status, 200u) << opened.body;
  const json::object session = opened.json().at("session").as_object();
  const std::string id(session.at("session_id").as_string());
  EXPECT_EQ(session.at("workspace_id").as_string(), "repo-a");
  EXPECT_EQ(session.at("status").as_string(), "running");
  EXPECT_EQ(session.at("queued_followups").as_int64(), 0);
  EXPECT_GT(session.at("started_unix_ms").as_int64(), 1'600'000'000'000);
  EXPECT_EQ(session.at("last_activity_unix_ms"), session.at("started_unix_ms"));

  // The workspace's running session is reused.
  EXPECT_EQ(open_session(client, "repo-a"), id);
  EXPECT_NE(open_session(client, "repo-b"), id);

  auto detail = client.get(session_path(id));
  ASSERT_EQ(detail.status, 200u);
  EXPECT_EQ(detail.json().at("session").at("session_id").as_string(), id);

  auto progress = client.post(session_path(id, "/progress"), json_body({{"message", " built "}}));
  ASSERT_EQ(progress.status, 200u) << progress.body;
  const auto progress_event = progress.json().at("event").as_object();
  EXPECT_EQ(progress_event.at("sequence_id").as_int64(), 1);
  EXPECT_EQ(progress_event.at("event_type").as_string(), "progress");
  EXPECT_EQ(progress_event.at("message").as_string(), "built");
  EXPECT_EQ(progress.json().at("session").at("session_id").as_string(), id);

  for (int i = 1; i <= 3; ++i) {
    auto followup = client.post(session_path(id, "/followups"),
                                json_body({{"message", "task " + std::to_string(i)}}));
    ASSERT_EQ(followup.status, 200u) << followup.body;
    EXPECT_EQ(followup.json().at("event").at("event_type").as_string(), "followup");
    EXPECT_EQ(followup.json().at("event").at("sequence_id").as_int64(), 1 + i);
    EXPECT_EQ(followup.json().at("session").at("queued_followups").as_int64(), i);
  }

  auto drained = client.post(session_path(id, "/followups/drain"), json_body({{"limit", 2}}));
  ASSERT_EQ(drained.status, 200u) << drained.body;
  EXPECT_EQ(drained.json().at("session_id").as_string(), id);
  EXPECT_EQ(drained.json().at("drained_count").as_int64(), 2);
  EXPECT_EQ(drained.json().at("followups"), json::parse(R"(["task 1","task 2"])"));
  EXPECT_EQ(drained.json().at("session").at("queued_followups").as_int64(), 1);

  auto closed = client.post(session_path(id, "/close"), "");
  ASSERT_EQ(closed.status, 200u) << closed.body;
  EXPECT_EQ(closed.json().at("session").at("status").as_string(), "closed");

  // An ended session stays inspectable, refuses new events, and can still be drained.
  EXPECT_EQ(client.get(session_path(id)).json().at("session").at("status").as_string(), "closed");
  EXPECT_EQ(client.post(session_path(id, "/progress"), json_body({{"message", "x"}})).error_code(),
            "external_coding_agent_session_not_running");
  EXPECT_EQ(client.post(session_path(id, "/followups"), json_body({{"message", "x"}})).error_code(),
            "external_coding_agent_session_not_running");
  auto rest = client.post(session_path(id, "/followups/drain"), "");
  ASSERT_EQ(rest.status, 200u) << rest.body;
  EXPECT_EQ(rest.json().at("followups"), json::parse(R"(["task 3"])"));
  EXPECT_EQ(rest.json().at("session").at("queued_followups").as_int64(), 0);

  // Closing again answers the final state.
  EXPECT_EQ(client.post(session_path(id, "/close"), "").json().at("session").at("status"),
            "closed");

  const std::string reopened = open_session(client, "repo-a");
  EXPECT_NE(reopened, id);
  EXPECT_EQ(client.get(session_path(reopened)).json().at("session").at("status"), "running");
}

TEST(Lifecycle, DrainDefaultsTo64InFifoOrder) {
  GatewayProcess gateway;
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "w");
  for (int i = 0; i < 70; ++i) {
    ASSERT_EQ(
        client
            .post(session_path(id, "/followups"), json_body({{"message", "m" + std::to_string(i)}}))
            .status,
        200u);
  }
  auto first = client.post(session_path(id, "/followups/drain"), "");
  ASSERT_EQ(first.status, 200u);
  const json::value first_body = first.json();
  const auto& followups = first_body.at("followups").as_array();
  ASSERT_EQ(followups.size(), 64u);
  for (int i = 0; i < 64; ++i)
    EXPECT_EQ(followups[i].as_string(), "m" + std::to_string(i));
  auto second = client.post(session_path(id, "/followups/drain"), json_body({{"limit", 1000000}}));
  EXPECT_EQ(second.json().at("drained_count").as_int64(), 6);
  EXPECT_EQ(second.json().at("followups").as_array().front().as_string(), "m64");
}

TEST(Lifecycle, MaxActiveSessionsIsEnforcedAndEndedSessionsFreeTheirSlot) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--max-active-sessions", "2"});
  HttpClient client(gateway.port());
  const std::string first = open_session(client, "one");
  open_session(client, "two");
  auto refused = client.post(kSessions, json_body({{"workspace_id", "three"}}));
  EXPECT_EQ(refused.status, 409u);
  EXPECT_EQ(refused.error_code(), "external_coding_agent_session_limit_reached");
  // Reuse of a running workspace is not a new session, so it is still allowed.
  EXPECT_EQ(open_session(client, "one"), first);

  ASSERT_EQ(client.post(session_path(first, "/close"), "").status, 200u);
  EXPECT_EQ(client.post(kSessions, json_body({{"workspace_id", "three"}})).status, 200u);
}

TEST(Lifecycle, ReapTimesOutSessionsIdleLongerThanTheTimeout) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--inactivity-timeout-ms", "600000"});
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "idle");
  const auto last_activity =
      client.get(session_path(id)).json().at("session").at("last_activity_unix_ms").as_int64();

  // Exactly at the timeout the session is not yet stale.
  auto not_yet = client.post("/gateway/external-coding-agent/reap",
                             json_body({{"now_unix_ms", last_activity + 600000}}));
  ASSERT_EQ(not_yet.status, 200u) << not_yet.body;
  EXPECT_EQ(not_yet.json().at("reaped_count").as_int64(), 0);

  auto reaped = client.post("/gateway/external-coding-agent/reap",
                            json_body({{"now_unix_ms", last_activity + 600001}}));
  ASSERT_EQ(reaped.status, 200u) << reaped.body;
  EXPECT_EQ(reaped.json().at("reaped_count").as_int64(), 1);
  const json::value reaped_body = reaped.json();
  const auto& sessions = reaped_body.at("sessions").as_array();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].at("session_id").as_string(), id);
  EXPECT_EQ(sessions[0].at("status").as_string(), "timed_out");
  json::object runtime = reaped.json().at("runtime").as_object();
  EXPECT_EQ(runtime.at("store").at("kind").as_string(), default_store_kind());
  runtime.erase("store");  // its counters are the durability tests' business
  EXPECT_EQ(runtime.at("event_memory").at("budget_bytes").as_int64(), 256 << 20);
  runtime.erase("event_memory");  // and what memory holds, the event memory tests'
  EXPECT_EQ(runtime, json::parse(R"({"active_sessions":0,
      "inactivity_timeout_ms":600000,"max_active_sessions":16,"max_events_per_session":256,
      "open_streams":0,"worker":null,"agents":{"profiles":[],"default_agent":"","running":0,
      "started":0,"failed_to_start":0}})"));

  EXPECT_EQ(client.get(session_path(id)).json().at("session").at("status"), "timed_out");
  EXPECT_NE(open_session(client, "idle"), id);
  // Without a body, reap uses the current time: the fresh session is not stale.
  EXPECT_EQ(client.post("/gateway/external-coding-agent/reap", "").json().at("reaped_count"), 0);
}

TEST(Lifecycle, BackgroundTimerReapsWithoutAnyRequestTouchingTheSession) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--inactivity-timeout-ms", "200"});
  HttpClient client(gateway.port());
  open_session(client, "forgotten");
  // The status endpoint does not reap, so only the background timer can bring this to zero.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::int64_t active = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    active = status_runtime(client).at("active_sessions").as_int64();
    if (active == 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(active, 0);
}

TEST(Lifecycle, StatusDescribesEndpointsAuthAndRuntime) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--max-active-sessions", "5",
                          "--max-events-per-session", "7", "--inactivity-timeout-ms", "1234",
                          "--rate-limit-window-seconds", "30", "--rate-limit-max-requests", "99",
                          "--session-ttl-seconds", "77"});
  HttpClient client(gateway.port());
  open_session(client, "w");
  auto status = client.get("/gateway/status");
  ASSERT_EQ(status.status, 200u);
  json::value body = status.json();
  json::object& status_runtime =
      body.at("gateway").at("external_coding_agent").at("runtime").as_object();
  EXPECT_EQ(status_runtime.at("store").at("kind").as_string(), default_store_kind());
  status_runtime.erase("store");
  const auto expected = json::parse(R"({
    "auth": {"mode": "localhost-dev", "active_sessions": 0, "total_sessions_issued": 0,
             "auth_failures": 0, "auth_attempts_delayed": 0, "auth_attempts_refused": 0,
             "rate_limited_requests": 0, "rate_limit_window_seconds": 30,
             "rate_limit_max_requests": 99, "session_ttl_seconds": 77},
    "gateway": {
      "status_endpoint": "/gateway/status",
      "auth_session_endpoint": "/gateway/auth/session",
      "metrics_endpoint": "/metrics",
      "openapi_endpoint": "/gateway/openapi.json",
      "dashboard_endpoint": "/dashboard",
      "external_coding_agent": {
        "sessions_endpoint": "/gateway/external-coding-agent/sessions",
        "list_endpoint": "/gateway/external-coding-agent/sessions",
        "session_detail_endpoint": "/gateway/external-coding-agent/sessions/{session_id}",
        "progress_endpoint": "/gateway/external-coding-agent/sessions/{session_id}/progress",
        "followups_endpoint": "/gateway/external-coding-agent/sessions/{session_id}/followups",
        "followups_drain_endpoint":
            "/gateway/external-coding-agent/sessions/{session_id}/followups/drain",
        "stream_endpoint": "/gateway/external-coding-agent/sessions/{session_id}/stream",
        "close_endpoint": "/gateway/external-coding-agent/sessions/{session_id}/close",
        "cancel_endpoint": "/gateway/external-coding-agent/sessions/{session_id}/cancel",
        "permissions_endpoint":
            "/gateway/external-coding-agent/sessions/{session_id}/permissions",
        "permission_answer_endpoint":
            "/gateway/external-coding-agent/sessions/{session_id}/permissions/{request_id}",
        "reap_endpoint": "/gateway/external-coding-agent/reap",
        "runtime": {"active_sessions": 1, "inactivity_timeout_ms": 1234,
                    "max_active_sessions": 5, "max_events_per_session": 7,
                    "open_streams": 0, "worker": null,
                    "agents": {"profiles": [], "default_agent": "", "running": 0,
                               "started": 0, "failed_to_start": 0},
                    "event_memory": {"held_bytes": 0, "budget_bytes": 268435456,
                                     "events_let_go": 0, "appends_refused": 0}}}}})");
  EXPECT_EQ(body, expected) << status.body;
}

TEST(Lifecycle, RacingOpensOfOneWorkspaceYieldOneSession) {
  GatewayProcess gateway;
  HttpClient client(gateway.port());
  std::vector<std::string> ids(16);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    threads.emplace_back([&, i] { ids[i] = open_session(client, "contended"); });
  }
  for (auto& thread : threads)
    thread.join();
  for (const auto& id : ids)
    EXPECT_EQ(id, ids.front());
  EXPECT_EQ(status_runtime(client).at("active_sessions").as_int64(), 1);
}

}  // namespace
}  // namespace tau::test
