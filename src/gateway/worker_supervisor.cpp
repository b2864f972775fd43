#include "gateway/worker_supervisor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/array.hpp>
#include <deque>
#include <filesystem>
#include <optional>

#include "core/errors.h"

namespace tau::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace event_types {
constexpr std::string_view stdout_line = "subprocess.stdout";
constexpr std::string_view stderr_line = "subprocess.stderr";
constexpr std::string_view exit = "subprocess.exit";
constexpr std::string_view stdin_error = "subprocess.stdin_error";
}  // namespace event_types

// Records one worker's output and exit on its session: at once, on the worker's strand, or,
// when the pool's calls may block, in order on a strand of the supervisor's threads. There,
// output lines waiting for the strand are appended together, one call for all of them, so a
// worker that writes faster than one round trip per line is kept up with.
class WorkerSupervisor::SessionWorker : public worker::WorkerListener,
                                        public std::enable_shared_from_this<SessionWorker> {
 public:
  SessionWorker(WorkerSupervisor& supervisor, std::string session_id)
      : supervisor_(supervisor), session_id_(std::move(session_id)) {
    if (auto executor = supervisor.recorder_calls_.executor())
      recorder_.emplace(asio::make_strand(*executor));
  }

  void on_output(worker::OutputStream stream, std::string line) override {
    const std::string_view type = stream == worker::OutputStream::stdout_stream
                                      ? event_types::stdout_line
                                      : event_types::stderr_line;
    if (!recorder_) {
      supervisor_.pool_.append_event(session_id_, type, line);
      return;
    }
    bool drain_scheduled = false;
    {
      std::lock_guard lock(pending_mutex_);
      pending_.push_back(bridge::SessionService::NewEvent{std::string(type), std::move(line)});
      drain_scheduled = std::exchange(drain_scheduled_, true);
    }
    if (!drain_scheduled)
      record([this] { append_pending(); });
  }

  void on_exit(const worker::ExitStatus& status) override {
    // Output comes before the exit: whatever is still pending is appended first.
    record([this, description = status.describe(), success = status.success()] {
      // The worker is gone whether or not its end can be recorded (the store may be down).
      struct Exited {
        SessionWorker& worker;
        ~Exited() { worker.supervisor_.worker_exited(worker.session_id_); }
      } exited{*this};
      if (recorder_) {
        try {
          append_pending();
        } catch (const std::exception& error) {
          spdlog::warn("cannot record worker output of session {}: {}", session_id_, error.what());
        }
      }
      supervisor_.pool_.append_event(session_id_, event_types::exit, description);
      supervisor_.pool_.end_session(
          session_id_, success ? core::SessionStatus::completed : core::SessionStatus::failed);
    });
  }

 private:
  template <class F>
  void record(F call) {
    if (!recorder_) {
      call();
      return;
    }
    asio::post(*recorder_, [self = shared_from_this(), call = std::move(call)]() mutable {
      try {
        call();
      } catch (const std::exception& error) {
        spdlog::warn("cannot record worker output of session {}: {}", self->session_id_,
                     error.what());
      }
    });
  }

  // On the recorder strand: appends the lines waiting, in batches, until none are left.
  void append_pending() {
    constexpr std::size_t kMaxBatch = 512;
    while (true) {
      std::vector<bridge::SessionService::NewEvent> batch;
      {
        std::lock_guard lock(pending_mutex_);
        if (pending_.empty()) {
          drain_scheduled_ = false;
          return;
        }
        const std::size_t count = std::min(pending_.size(), kMaxBatch);
        batch.assign(
            std::make_move_iterator(pending_.begin()),
            std::make_move_iterator(pending_.begin() + static_cast<std::ptrdiff_t>(count)));
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
      }
      try {
        supervisor_.pool_.append_events(session_id_, batch);
      } catch (...) {
        std::lock_guard lock(pending_mutex_);
        drain_scheduled_ = false;
        throw;
      }
    }
  }

  WorkerSupervisor& supervisor_;
  const std::string session_id_;
  std::optional<asio::strand<asio::thread_pool::executor_type>> recorder_;
  std::mutex pending_mutex_;
  std::deque<bridge::SessionService::NewEvent> pending_;  // output lines not yet appended
  bool drain_scheduled_ = false;
};

WorkerSupervisor::WorkerSupervisor(asio::io_context& io, bridge::SessionService& pool,
                                   const GatewayConfig& config)
    : io_(io),
      pool_(pool),
      config_(config),
      enabled_(config.worker.enabled() || config.agents.has_protocol(AgentProtocol::lines)),
      // Each worker's calls are made in order (a strand), so a few threads serve many workers.
      recorder_calls_(enabled_ && pool.calls_block(), 2) {}

// A worker that could not start, in the words of the error that stopped it ("cannot start worker
// 'x': No such file or directory", or the filesystem's for the workspace directory): split at its
// first ": ", so that worker_failed's "<what>: <detail>" reads exactly as that error did.
core::Error start_failure(std::string_view what) {
  const auto colon = what.find(": ");
  if (colon == std::string_view::npos)
    return core::errors::worker_failed("cannot start the worker", what);
  return core::errors::worker_failed(what.substr(0, colon), what.substr(colon + 2));
}

worker::WorkerOptions worker_options(const GatewayConfig& config) {
  worker::WorkerOptions options;
  options.kill_grace = std::chrono::milliseconds(config.worker.kill_grace_ms);
  options.max_line_bytes = config.worker.max_line_bytes;
  // The worker's whole process tree ends with its session and with the gateway, and the
  // gateway's secrets stay out of its environment (TAU_GATEWAY_* are never passed on).
  options.supervisor_path = config.worker.supervisor_path.empty()
                                ? worker::default_supervisor_path()
                                : config.worker.supervisor_path;
  options.withheld_values = {config.auth.token, config.auth.password, config.store.redis.password};
  options.clear_environment = config.worker.clear_environment;
  options.rlimits = config.worker.rlimits;
  return options;
}

worker::EnvPairs session_env(const core::SessionSnapshot& session) {
  return {{"TAU_WORKSPACE_ID", session.workspace_id},
          {"TAU_EXTERNAL_SESSION_ID", session.session_id}};
}

std::string prepare_workspace(const GatewayConfig& config, const core::SessionSnapshot& session) {
  const std::filesystem::path directory =
      std::filesystem::path(config.worker.workspace_root) / session.workspace_id;
  std::filesystem::create_directories(directory);
  return std::filesystem::absolute(directory).lexically_normal().string();
}

bool WorkerSupervisor::is_valid_workspace_id(std::string_view workspace_id) {
  if (workspace_id.empty() || workspace_id.size() > 128)
    return false;
  if (workspace_id == "." || workspace_id == "..")
    return false;
  for (char c : workspace_id) {
    const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed)
      return false;
  }
  return true;
}

void WorkerSupervisor::check_workspace(std::string_view workspace_id) const {
  if (!is_valid_workspace_id(workspace_id)) {
    throw core::Error(
        core::ErrorCode::invalid_workspace_id,
        "with workers, workspace_id must match [A-Za-z0-9._-]{1,128} and not be . or ..");
  }
  std::error_code ignored;  // a directory that is missing is created by start()
  const auto status = std::filesystem::symlink_status(
      std::filesystem::path(config_.worker.workspace_root) / workspace_id, ignored);
  if (std::filesystem::is_symlink(status)) {
    throw core::Error(core::ErrorCode::invalid_workspace_id,
                      "the directory of workspace '" + std::string(workspace_id) +
                          "' is a symbolic link; workers only run in real directories under "
                          "the workspace root");
  }
}

void WorkerSupervisor::start(const core::SessionSnapshot& session, const AgentProfile& profile) {
  try {
    const std::string directory = prepare_workspace(config_, session);
    const worker::WorkerCommand command{profile.command, profile.args, profile.env};
    auto process = worker::WorkerProcess::spawn(
        asio::make_strand(io_), command, directory, session_env(session), worker_options(config_),
        std::make_shared<SessionWorker>(*this, session.session_id));
    // Recorded before it may report anything, so its exit always finds it here.
    {
      std::lock_guard lock(mutex_);
      workers_.emplace(session.session_id, process);
    }
    process->start();
  } catch (const std::exception& error) {
    ++failed_to_start_;
    pool_.discard(session.session_id);
    throw start_failure(error.what());
  }
}

std::optional<std::string> WorkerSupervisor::deliver_followup(const std::string& session_id,
                                                              std::string_view message) {
  std::shared_ptr<worker::WorkerProcess> process;
  {
    std::lock_guard lock(mutex_);
    if (auto found = workers_.find(session_id); found != workers_.end())
      process = found->second;
  }
  // One follow-up is one line on the worker's stdin.
  std::string line(message);
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  std::optional<std::string> failure =
      process ? process->write_line(line) : std::optional<std::string>("the worker has exited");
  if (!failure)
    return std::nullopt;
  pool_.append_event(session_id, event_types::stdin_error, *failure);
  pool_.end_session(session_id, core::SessionStatus::failed);
  return failure;
}

void WorkerSupervisor::deliver_routed_followup(const std::string& session_id,
                                               const std::string& message) {
  try {
    if (auto failure = deliver_followup(session_id, message))
      spdlog::warn("session {}: could not deliver a follow-up: {}", session_id, *failure);
  } catch (const std::exception& error) {
    spdlog::warn("session {}: could not record a follow-up's failure: {}", session_id,
                 error.what());
  }
}

void WorkerSupervisor::on_session_end(const core::SessionSnapshot& session) {
  std::lock_guard lock(mutex_);
  if (auto found = workers_.find(session.session_id); found != workers_.end()) {
    found->second->terminate();
  }
}

void WorkerSupervisor::worker_exited(const std::string& session_id) {
  std::function<void()> all_exited;
  {
    std::lock_guard lock(mutex_);
    workers_.erase(session_id);
    ++exited_;
    if (workers_.empty() && on_all_exited_)
      all_exited = std::exchange(on_all_exited_, nullptr);
  }
  if (all_exited)
    all_exited();
}

json::value WorkerSupervisor::status_json() const {
  if (!enabled_)
    return nullptr;
  json::array args;
  for (const auto& arg : config_.worker.args)
    args.emplace_back(arg);
  const Counts now = counts();
  return json::object{
      {"command", config_.worker.command},
      {"args", std::move(args)},
      {"running", now.running},
      {"exited", now.exited},
      {"failed_to_start", now.failed_to_start},
  };
}

WorkerSupervisor::Counts WorkerSupervisor::counts() const {
  std::lock_guard lock(mutex_);
  return Counts{workers_.size(), exited_.load(), failed_to_start_.load()};
}

void WorkerSupervisor::shutdown(std::function<void()> done) {
  {
    std::lock_guard lock(mutex_);
    if (!workers_.empty()) {
      on_all_exited_ = std::move(done);
      for (const auto& [session_id, process] : workers_)
        process->terminate();
      return;
    }
  }
  done();
}

}  // namespace tau::gateway
