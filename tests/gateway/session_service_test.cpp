// The gateway over a session service whose calls may block (as a shared, remote pool's do): the
// API in-process, over a real SessionPool behind a decorator that says its calls block and
// watches which threads call it. No call but the live reads may be made on an I/O thread; and a
// follow stream whose live feed breaks ends with an `error` frame.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_pool.h"
#include "bridge/session_service.h"
#include "gateway/config.h"
#include "gateway/event_stream.h"
#include "gateway/gateway_api.h"
#include "gateway/worker_supervisor.h"
#include "http/server.h"
#include "store/sqlite_store.h"
#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

// A SessionPool that claims its calls block, and records every call made on a thread running
// the gateway's io_context other than the two allowed there. It can also break the live feed.
class WatchedService final : public bridge::SessionService {
 public:
  WatchedService(bridge::SessionPool& inner, asio::io_context& io) : inner_(inner), io_(io) {}

  // Calls made on an I/O thread that must not be, by name.
  std::vector<std::string> misplaced_calls() const {
    std::lock_guard lock(mutex_);
    return misplaced_;
  }
  // Every call made off the I/O threads, by name.
  std::set<std::string> calls_off_io() const {
    std::lock_guard lock(mutex_);
    return off_io_;
  }
  // From now on live reads report the feed lost: every one, or only one that carries events.
  void lose_feed(bool only_with_events) {
    loss_needs_events_ = only_with_events;
    feed_lost_ = true;
  }

  void set_end_listener(EndListener listener) override {
    note("set_end_listener");
    inner_.set_end_listener(std::move(listener));
  }
  bridge::OpenResult open(std::string_view workspace_id, bool with_worker) override {
    note("open");
    return inner_.open(workspace_id, with_worker);
  }
  void discard(std::string_view session_id) override {
    note("discard");
    inner_.discard(session_id);
  }
  core::SessionSnapshot get(std::string_view session_id) override {
    note("get");
    return inner_.get(session_id);
  }
  bridge::AppendResult append_progress(std::string_view session_id,
                                       std::string_view message) override {
    note("append_progress");
    return inner_.append_progress(session_id, message);
  }
  bridge::AppendResult append_followup(std::string_view session_id,
                                       std::string_view message) override {
    note("append_followup");
    return inner_.append_followup(session_id, message);
  }
  using SessionService::append_event;
  bridge::AppendResult append_event(std::string_view session_id, std::string_view event_type,
                                    std::string_view message, std::string_view data) override {
    note("append_event");
    return inner_.append_event(session_id, event_type, message, data);
  }
  bridge::DrainResult drain_followups(std::string_view session_id, std::size_t limit) override {
    note("drain_followups");
    return inner_.drain_followups(session_id, limit);
  }
  bridge::Replay replay(std::string_view session_id, std::optional<std::uint64_t> after,
                        std::size_t limit) override {
    note("replay");
    return inner_.replay(session_id, after, limit);
  }
  bridge::FollowStart follow(std::string_view session_id, std::optional<std::uint64_t> after,
                             std::size_t limit,
                             std::shared_ptr<bridge::SessionFollower> follower) override {
    note("follow");
    return inner_.follow(session_id, after, limit, std::move(follower));
  }
  bridge::FollowUpdate events_after(std::string_view session_id, std::uint64_t after,
                                    std::size_t max_events) override {
    bridge::FollowUpdate update = inner_.events_after(session_id, after, max_events);
    update.feed_lost = feed_lost_ && (!loss_needs_events_ || !update.events.empty());
    return update;
  }
  void unfollow(std::string_view session_id, const bridge::SessionFollower* follower) override {
    inner_.unfollow(session_id, follower);
  }
  bridge::EndResult close(std::string_view session_id) override {
    note("close");
    return inner_.close(session_id);
  }
  bridge::EndResult end_session(std::string_view session_id,
                                core::SessionStatus terminal_status) override {
    note("end_session");
    return inner_.end_session(session_id, terminal_status);
  }
  bridge::ReapResult reap(std::int64_t now_unix_ms) override {
    note("reap");
    return inner_.reap(now_unix_ms);
  }
  std::size_t purge_ended(std::int64_t now_unix_ms) override {
    note("purge_ended");
    return inner_.purge_ended(now_unix_ms);
  }
  bridge::ListPage list(const bridge::ListQuery& query) override {
    note("list");
    return inner_.list(query);
  }
  bridge::RuntimeInfo runtime() override {
    note("runtime");
    return inner_.runtime();
  }
  bridge::PoolCounters counters() override {
    note("counters");
    return inner_.counters();
  }
  const bridge::PoolLimits& limits() const override {
    note("limits");
    return inner_.limits();
  }
  std::int64_t now() const override {
    note("now");
    return inner_.now();
  }
  store::Ticket durable_ticket() const override {
    note("durable_ticket");
    return inner_.durable_ticket();
  }
  void when_durable(store::Ticket ticket, std::function<void(bool)> done) override {
    note("when_durable");
    inner_.when_durable(ticket, std::move(done));
  }
  store::StoreInfo store_info() override {
    note("store_info");
    return inner_.store_info();
  }
  bool store_failed() const override {
    note("store_failed");
    return inner_.store_failed();
  }
  const metrics::Histogram& commit_seconds() const override {
    note("commit_seconds");
    return inner_.commit_seconds();
  }
  bool calls_block() const override {
    note("calls_block");
    return true;
  }

 private:
  void note(const char* call) const {
    const bool on_io = io_.get_executor().running_in_this_thread();
    std::lock_guard lock(mutex_);
    if (on_io)
      misplaced_.emplace_back(call);
    else
      off_io_.emplace(call);
  }

  bridge::SessionPool& inner_;
  asio::io_context& io_;
  std::atomic<bool> loss_needs_events_{false};
  std::atomic<bool> feed_lost_{false};
  mutable std::mutex mutex_;
  mutable std::vector<std::string> misplaced_;
  mutable std::set<std::string> off_io_;
};

// An io_context whose unfinished handlers can be destroyed before what they refer to is.
class IoContext : public asio::io_context {
 public:
  using asio::io_context::io_context;
  void destroy_pending_handlers() { shutdown(); }
};

gateway::GatewayConfig make_config(const std::string& worker_command,
                                   const std::string& workspace_root) {
  gateway::GatewayConfig config;
  config.auth.mode = auth::AuthMode::localhost_dev;
  config.http.threads = 2;
  config.auth.rate_limit_max_requests = 1000000;
  config.sse.heartbeat_ms = 200;
  config.worker.command = worker_command;
  config.worker.workspace_root = workspace_root;
  config.worker.kill_grace_ms = 500;
  config.worker.supervisor_path = TAU_WORKER_SUPERVISOR_BINARY;
  // As the configuration does it: the worker flags are the profile named default (lines).
  if (!worker_command.empty()) {
    config.agents.profiles.push_back(
        {.name = "default", .protocol = gateway::AgentProtocol::lines, .command = worker_command});
    config.agents.default_agent = "default";
  }
  return config;
}

// The API and an HTTP server in this process, over a SQLite store (so changes wait for their
// commit) behind WatchedService, served by two I/O threads.
class InProcessGateway {
 public:
  explicit InProcessGateway(const std::string& worker_command = "")
      : config_(make_config(worker_command, dir_.path() + "/workspaces")),
        store_(std::make_shared<store::SqliteStore>(dir_.path() + "/gateway.db",
                                                    store::Durability::normal)),
        pool_(bridge::PoolLimits{}, core::system_clock_unix_ms, nullptr,
              gateway::encode_event_frame, store_),
        io_(2),
        sessions_(pool_, io_),
        authenticator_(auth::AuthConfig{config_.auth.mode, "", "", 60}, core::system_clock_unix_ms),
        rate_limiter_(60, config_.auth.rate_limit_max_requests, core::system_clock_unix_ms),
        workers_(io_, sessions_, config_),
        agents_(io_, sessions_, config_),
        api_(config_, sessions_, authenticator_, rate_limiter_, workers_, agents_) {
    store_->load();
    sessions_.set_end_listener(
        [this](const core::SessionSnapshot& session) { workers_.on_session_end(session); });
    server_ = std::make_unique<http::Server>(
        io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0),
        [this](http::Exchange& exchange) { return api_.handle(exchange); },
        gateway::server_options(config_));
    api_.set_browser_policy(gateway::browser_policy(config_, port()));
    server_->start();
    api_.set_listening(true);
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { io_.run(); });
  }

  ~InProcessGateway() {
    server_->stop();
    io_.stop();
    for (auto& thread : threads_)
      thread.join();
    api_.blocking_calls().join();
    io_.destroy_pending_handlers();
  }

  std::uint16_t port() const { return server_->local_endpoint().port(); }
  WatchedService& sessions() { return sessions_; }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  const gateway::GatewayConfig config_;
  std::shared_ptr<store::SqliteStore> store_;
  bridge::SessionPool pool_;
  IoContext io_;
  WatchedService sessions_;
  auth::Authenticator authenticator_;
  auth::LocalRateLimiter rate_limiter_;
  gateway::WorkerSupervisor workers_;
  gateway::AgentSessions agents_;
  gateway::GatewayApi api_;
  std::unique_ptr<http::Server> server_;
  std::vector<std::thread> threads_;
};

void expect_ok(const HttpResponse& response) {
  EXPECT_EQ(response.status, 200u) << response.body;
}

TEST(BlockingSessionService, NoCallButTheLiveReadsRunsOnAnIoThread) {
  InProcessGateway gateway;
  HttpClient client(gateway.port());

  const std::string id = open_session(client, "ws");
  ASSERT_FALSE(id.empty());
  expect_ok(client.post(session_path(id, "/progress"), json_body({{"message", "working"}})));
  expect_ok(client.post(session_path(id, "/followups"), json_body({{"message", "and this"}})));
  expect_ok(client.post(session_path(id, "/followups/drain"), "{}"));
  expect_ok(client.get(session_path(id)));
  expect_ok(client.get(kSessions + "?limit=10"));
  expect_ok(client.get("/gateway/status"));
  expect_ok(client.get("/readyz"));
  expect_ok(client.get("/healthz"));
  expect_ok(client.get("/metrics"));
  expect_ok(client.post("/gateway/external-coding-agent/reap", "{}"));

  // Replay only, then a follow stream that sees a live event and the session's end.
  const auto replay = parse_sse(client.get(session_path(id, "/stream")).body);
  ASSERT_FALSE(replay.empty());
  EXPECT_EQ(replay.back().event, "done");
  {
    SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
    EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
    EXPECT_EQ(stream.next_message()->id, "1");
    EXPECT_EQ(stream.next_message()->id, "2");
    expect_ok(client.post(session_path(id, "/progress"), json_body({{"message", "live"}})));
    EXPECT_EQ(stream.next_message()->id, "3");
    expect_ok(client.post(session_path(id, "/close"), ""));
    EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
    EXPECT_EQ(stream.next_message()->event, "done");
    EXPECT_FALSE(stream.next_message());
    EXPECT_TRUE(stream.completed());
  }

  // Errors thrown on the calls' threads are answered from the connection, in the envelope.
  const auto missing = client.get(session_path("eca_missing"));
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(missing.error_code(), "external_coding_agent_session_not_found");
  const auto missing_stream = client.get(session_path("eca_missing", "/stream?follow=true"));
  EXPECT_EQ(missing_stream.status, 404u);
  EXPECT_EQ(missing_stream.error_code(), "external_coding_agent_session_not_found");
  const auto not_running =
      client.post(session_path(id, "/progress"), json_body({{"message", "x"}}));
  EXPECT_EQ(not_running.status, 409u);
  EXPECT_EQ(not_running.error_code(), "external_coding_agent_session_not_running");

  EXPECT_EQ(gateway.sessions().misplaced_calls(), std::vector<std::string>{});
  // The requests did reach the pool, off the I/O threads (the SQLite commits were waited for).
  const auto off_io = gateway.sessions().calls_off_io();
  for (const char* call :
       {"open", "append_progress", "append_followup", "drain_followups", "get", "list", "runtime",
        "store_info", "store_failed", "counters", "commit_seconds", "reap", "replay", "follow",
        "close", "durable_ticket"}) {
    EXPECT_TRUE(off_io.contains(call)) << call;
  }
}

TEST(BlockingSessionService, WorkerOutputIsRecordedOffTheIoThreads) {
  TempDir scripts;
  const std::string script = scripts.path() + "/agent.sh";
  std::ofstream(script) << "#!/bin/sh\necho hello\nwhile IFS= read -r line; do\n"
                           "  [ \"$line\" = exit0 ] && exit 0\n  echo \"got:$line\"\ndone\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  InProcessGateway gateway(script);
  HttpClient client(gateway.port());

  const std::string id = open_session(client, "ws");
  ASSERT_FALSE(id.empty());
  expect_ok(client.post(session_path(id, "/followups"), json_body({{"message", "ping"}})));
  expect_ok(client.post(session_path(id, "/followups"), json_body({{"message", "exit0"}})));

  // The worker's lines, then its exit, in order, and the session ends as completed.
  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  std::vector<std::string> worker_events;
  while (auto message = stream.next_message()) {
    if (message->event == "done")
      break;
    if (message->event != "external_coding_agent.progress")
      continue;
    const json::value event = json::parse(message->data);
    if (event.at("event_type").as_string().starts_with("subprocess."))
      worker_events.push_back(std::string(event.at("event_type").as_string()) + " " +
                              std::string(event.at("message").as_string()));
  }
  EXPECT_EQ(worker_events,
            (std::vector<std::string>{"subprocess.stdout hello", "subprocess.stdout got:ping",
                                      "subprocess.exit exit code 0"}));
  EXPECT_EQ(client.get(session_path(id)).json().at("session").at("status").as_string(),
            "completed");

  EXPECT_EQ(gateway.sessions().misplaced_calls(), std::vector<std::string>{});
  const auto off_io = gateway.sessions().calls_off_io();
  EXPECT_TRUE(off_io.contains("append_event"));
  EXPECT_TRUE(off_io.contains("end_session"));
}

void expect_feed_lost_frame(const std::optional<SseMessage>& error) {
  ASSERT_TRUE(error);
  EXPECT_EQ(error->event, "error");
  EXPECT_TRUE(error->id.empty());
  const json::value envelope = json::parse(error->data);
  EXPECT_EQ(envelope.at("error").at("type").as_string(), "server_error");
  EXPECT_EQ(envelope.at("error").at("code").as_string(), "store_unavailable");
  EXPECT_FALSE(envelope.at("error").at("message").as_string().empty());
}

TEST(BlockingSessionService, LostLiveFeedEndsTheStreamWithAnErrorFrame) {
  InProcessGateway gateway;
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "ws");
  ASSERT_FALSE(id.empty());
  expect_ok(client.post(session_path(id, "/progress"), json_body({{"message", "one"}})));

  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
  EXPECT_EQ(stream.next_message()->id, "1");

  // The next live read reports the feed lost: what it carried is sent, then the error frame,
  // then the response ends without `done`.
  gateway.sessions().lose_feed(/*only_with_events=*/true);
  expect_ok(client.post(session_path(id, "/progress"), json_body({{"message", "two"}})));
  const auto event = stream.next_message();
  ASSERT_TRUE(event);
  EXPECT_EQ(event->id, "2");
  expect_feed_lost_frame(stream.next_message());
  EXPECT_FALSE(stream.next_message());
  EXPECT_TRUE(stream.completed());

  // Resuming from the last id works: the session itself is untouched.
  const auto resumed = parse_sse(client.get(session_path(id, "/stream?after_sequence_id=2")).body);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed.back().event, "done");
}

TEST(BlockingSessionService, LostLiveFeedWithNothingNewEndsAnIdleStream) {
  InProcessGateway gateway;
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "ws");
  ASSERT_FALSE(id.empty());

  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
  // No event arrives: the stream's next read (at its next heartbeat at the latest) finds the
  // feed lost.
  gateway.sessions().lose_feed(/*only_with_events=*/false);
  expect_feed_lost_frame(stream.next_message());
  EXPECT_FALSE(stream.next_message());
  EXPECT_TRUE(stream.completed());
}

}  // namespace
}  // namespace tau::test
