// The session launcher over a real SessionPool and WorkerSupervisor: opening a session starts its
// worker, follow-ups reach it, and every failure is a domain error (core::Error), which the API
// turns into its answer in one place (to_api_error).
#include "gateway/session_launcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bridge/session_pool.h"
#include "core/clock.h"
#include "core/errors.h"
#include "gateway/agent_sessions.h"
#include "gateway/api_error.h"
#include "gateway/config.h"
#include "gateway/worker_supervisor.h"

namespace tau::gateway {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr std::string_view kWorkspaceRule =
    "with workers, workspace_id must match [A-Za-z0-9._-]{1,128} and not be . or ..";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "launcher-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Worker mode with `command` (none: worker mode off), workspaces in a directory of the test's.
GatewayConfig worker_config(const std::string& command, const std::string& workspace_root) {
  GatewayConfig config;
  config.worker.command = command;
  config.worker.workspace_root = workspace_root;
  config.worker.kill_grace_ms = 500;
  config.worker.supervisor_path = TAU_WORKER_SUPERVISOR_BINARY;
  // As the configuration does it: the worker flags are the profile named default (lines).
  if (!command.empty()) {
    config.agents.profiles.push_back(
        {.name = "default", .protocol = AgentProtocol::lines, .command = command});
    config.agents.default_agent = "default";
  }
  return config;
}

template <class Call>
std::optional<core::Error> error_of(Call&& call) {
  try {
    call();
  } catch (const core::Error& error) {
    return error;
  }
  return std::nullopt;
}

// A pool, a supervisor on an I/O thread of its own, and the launcher over both, wired as the
// gateway wires them (a session's end stops its worker).
class Launcher {
 public:
  explicit Launcher(const std::string& worker_command = "")
      : config_(worker_config(worker_command, dir_.path() + "/workspaces")),
        pool_(bridge::PoolLimits{}, core::system_clock_unix_ms),
        workers_(io_, pool_, config_),
        agents_(io_, pool_, config_),
        launcher_(pool_, config_.agents, workers_, agents_) {
    pool_.set_end_listener(
        [this](const core::SessionSnapshot& session) { workers_.on_session_end(session); });
    io_thread_ = std::thread([this] { io_.run(); });
  }

  ~Launcher() {
    std::promise<void> stopped;
    workers_.shutdown([&stopped] { stopped.set_value(); });
    stopped.get_future().wait();
    work_.reset();
    io_thread_.join();
  }

  SessionLauncher& operator*() { return launcher_; }
  SessionLauncher* operator->() { return &launcher_; }
  bridge::SessionPool& pool() { return pool_; }
  WorkerSupervisor& workers() { return workers_; }
  const std::string& workspace_root() const { return config_.worker.workspace_root; }

  std::vector<core::SessionEvent> events(const std::string& session_id) {
    std::vector<core::SessionEvent> result;
    for (const auto& retained : pool_.replay(session_id, std::nullopt, 1000).events)
      result.push_back(retained->event);
    return result;
  }

  // Waits until the session has an event of this type with this message (a deadline only
  // bounds a hang).
  bool wait_for_event(const std::string& session_id, std::string_view type,
                      std::string_view message) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& event : events(session_id)) {
        if (event.event_type == type && event.message == message)
          return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

 private:
  TempDir dir_;
  const GatewayConfig config_;
  bridge::SessionPool pool_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  WorkerSupervisor workers_;
  AgentSessions agents_;
  SessionLauncher launcher_;
  std::thread io_thread_;
};

TEST(SessionLauncher, WithoutWorkersOpensOrReusesTheWorkspaceSessionAndStartsNothing) {
  Launcher launcher;
  const LaunchResult first = launcher->launch({.workspace_id = "  ../not-a-directory "});
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.session.workspace_id, "../not-a-directory");
  EXPECT_EQ(first.session.status, core::SessionStatus::running);
  EXPECT_GT(first.commit_ticket, 0u);
  const LaunchResult again = launcher->launch({.workspace_id = "../not-a-directory"});
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.session.session_id, first.session.session_id);
  EXPECT_EQ(launcher.workers().counts().running, 0u);
}

TEST(SessionLauncher, WithoutWorkersAFollowUpIsOnlyQueued) {
  Launcher launcher;
  const std::string id = launcher->launch({.workspace_id = "ws"}).session.session_id;
  const bridge::AppendResult result = launcher->deliver_followup(id, "next step");
  EXPECT_EQ(result.event.event_type, "followup");
  EXPECT_EQ(result.event.message, "next step");
  EXPECT_EQ(result.session.queued_followups, 1u);
  EXPECT_EQ(result.session.status, core::SessionStatus::running);
}

TEST(SessionLauncher, WithWorkersAWorkspaceIdThatCannotNameADirectoryIsRefused) {
  Launcher launcher("/bin/cat");
  const std::vector<std::string> bad_ids{
      "", "   ", ".", "..", " .. ", "a/b", "x y", "ws\xc3\xa9", std::string(129, 'a')};
  for (const std::string& bad : bad_ids) {
    const auto error = error_of([&] { launcher->launch({.workspace_id = bad}); });
    ASSERT_TRUE(error) << bad;
    EXPECT_EQ(error->code(), core::ErrorCode::invalid_workspace_id) << bad;
    EXPECT_EQ(error->what(), kWorkspaceRule) << bad;
  }
  EXPECT_EQ(launcher.pool().runtime().active_sessions, 0u);
  EXPECT_EQ(launcher.workers().counts().failed_to_start, 0u);
}

TEST(SessionLauncher, AWorkerThatCannotStartIsWorkerFailedAndLeavesNoSession) {
  Launcher launcher("/nonexistent/agent-binary");
  // The id is trimmed before it is checked: this one is valid, so the worker is tried.
  const auto error = error_of([&] { launcher->launch({.workspace_id = " ws "}); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code(), core::ErrorCode::worker_failed);
  EXPECT_STREQ(error->what(),
               "cannot start worker '/nonexistent/agent-binary': No such file or directory");
  EXPECT_EQ(launcher.pool().runtime().active_sessions, 0u);
  EXPECT_TRUE(launcher.pool().list({}).sessions.empty());
  EXPECT_EQ(launcher.workers().counts().failed_to_start, 1u);
  EXPECT_EQ(launcher.workers().counts().running, 0u);
}

TEST(SessionLauncher, AFollowUpTheWorkerCannotTakeIsWorkerFailedAndFailsTheSession) {
  Launcher launcher("/bin/cat");
  // A session whose worker is gone: opened for a worker that was never started.
  const std::string id = launcher.pool().open("ws", true).session.session_id;
  const auto error = error_of([&] { launcher->deliver_followup(id, "anyone there?"); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code(), core::ErrorCode::worker_failed);
  EXPECT_STREQ(error->what(), "could not deliver the follow-up: the worker has exited");
  EXPECT_EQ(launcher.pool().get(id).status, core::SessionStatus::failed);
  // The follow-up was queued first; the failure is recorded after it.
  const auto events = launcher.events(id);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].event_type, "followup");
  EXPECT_EQ(events.back().event_type, "subprocess.stdin_error");
  EXPECT_EQ(events.back().message, "the worker has exited");
}

TEST(SessionLauncher, StartsOneWorkerPerSessionAndDeliversFollowUpsToItInOrder) {
  Launcher launcher("/bin/cat");
  const LaunchResult launched = launcher->launch({.workspace_id = "ws"});
  ASSERT_TRUE(launched.created);
  EXPECT_EQ(launcher.workers().counts().running, 1u);
  EXPECT_FALSE(launcher->launch({.workspace_id = "ws"}).created);
  EXPECT_EQ(launcher.workers().counts().running, 1u) << "a reused session starts no worker";
  EXPECT_TRUE(std::filesystem::is_directory(launcher.workspace_root() + "/ws"));

  const std::string& id = launched.session.session_id;
  launcher->deliver_followup(id, "first");
  launcher->deliver_followup(id, "second\nline");
  // cat echoes each follow-up back as one output line; line breaks inside one became spaces.
  EXPECT_TRUE(launcher.wait_for_event(id, "subprocess.stdout", "first"));
  EXPECT_TRUE(launcher.wait_for_event(id, "subprocess.stdout", "second line"));
  std::vector<std::string> echoed;
  for (const auto& event : launcher.events(id)) {
    if (event.event_type == "subprocess.stdout")
      echoed.push_back(event.message);
  }
  EXPECT_EQ(echoed, (std::vector<std::string>{"first", "second line"}));
  EXPECT_EQ(launcher.pool().get(id).status, core::SessionStatus::running);
}

TEST(ApiErrorMapping, EachCoreErrorHasOneStatusAndTheApiCode) {
  const ApiError worker = to_api_error(core::errors::worker_failed("could not x", "because"));
  EXPECT_EQ(worker.status(), 502u);
  EXPECT_EQ(worker.code(), "gateway_runtime_error");
  EXPECT_STREQ(worker.what(), "could not x: because");
  EXPECT_EQ(http_status_of(core::ErrorCode::invalid_workspace_id), 400u);
  EXPECT_EQ(http_status_of(core::ErrorCode::invalid_message), 400u);
  EXPECT_EQ(http_status_of(core::ErrorCode::session_not_found), 404u);
  EXPECT_EQ(http_status_of(core::ErrorCode::session_not_running), 409u);
  EXPECT_EQ(http_status_of(core::ErrorCode::session_limit_reached), 409u);
  EXPECT_EQ(http_status_of(core::ErrorCode::store_unavailable), 503u);
  const ApiError missing = to_api_error(core::errors::session_not_found());
  EXPECT_EQ(missing.status(), 404u);
  EXPECT_EQ(missing.code(), "external_coding_agent_session_not_found");
}

}  // namespace
}  // namespace tau::gateway
