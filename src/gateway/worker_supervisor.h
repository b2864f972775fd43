#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bridge/session_service.h"
#include "gateway/blocking_calls.h"
#include "gateway/config.h"
#include "worker/worker_process.h"

namespace tau::gateway {

// How every agent process is started and contained, whatever its protocol: the supervisor, the
// kill grace, the line limit, the environment rules, the resource limits.
worker::WorkerOptions worker_options(const GatewayConfig& config);
// The session's own variables in its agent's environment.
worker::EnvPairs session_env(const core::SessionSnapshot& session);
// <workspace-root>/<workspace_id>, created if missing.
std::string prepare_workspace(const GatewayConfig& config, const core::SessionSnapshot& session);
// A process that could not start, in the words of the error that stopped it, as worker_failed.
core::Error start_failure(std::string_view what);

// Worker mode: joins each session to one supervised process. Output lines and the exit become
// the session's events; the exit ends the session; a session's end stops its worker. When the
// pool's calls may block, a worker's output and exit are recorded, each worker's in order, from
// threads of the supervisor's own rather than from the worker's I/O thread.
class WorkerSupervisor {
 public:
  WorkerSupervisor(boost::asio::io_context& io, bridge::SessionService& pool,
                   const GatewayConfig& config);

  bool enabled() const { return enabled_; }
  // `[A-Za-z0-9._-]{1,128}`, not "." or "..": it names a directory under the workspace root.
  static bool is_valid_workspace_id(std::string_view workspace_id);
  // Throws core::Error `invalid_workspace_id` unless the id is valid and its directory is not a
  // symbolic link (which would run the agent outside the workspace root).
  void check_workspace(std::string_view workspace_id) const;
  // Starts the worker of a session that open() has just created, as `profile` (protocol lines)
  // says. When the worker cannot start, the session is discarded and this throws core::Error
  // `worker_failed`.
  void start(const core::SessionSnapshot& session, const AgentProfile& profile);
  // Writes a follow-up as one line to the worker's stdin (line breaks inside it become spaces).
  // When that fails the session is marked failed with a `subprocess.stdin_error` event and this
  // returns why.
  std::optional<std::string> deliver_followup(const std::string& session_id,
                                              std::string_view message);
  // For a store that routes follow-ups to the gateway running the worker (the followup
  // listener): delivers it when this gateway runs the session's worker.
  void deliver_routed_followup(const std::string& session_id, const std::string& message);
  // For the pool's end listener (called with the pool's lock held): stops the session's worker.
  void on_session_end(const core::SessionSnapshot& session);
  struct Counts {
    std::uint64_t running = 0;
    std::uint64_t exited = 0;
    std::uint64_t failed_to_start = 0;
  };
  Counts counts() const;
  // The `runtime.worker` status object, or null when worker mode is off.
  boost::json::value status_json() const;
  // Stops every worker; calls `done` once all have exited (SIGKILL after the grace period).
  void shutdown(std::function<void()> done);

 private:
  class SessionWorker;
  void worker_exited(const std::string& session_id);

  boost::asio::io_context& io_;
  bridge::SessionService& pool_;
  const GatewayConfig& config_;
  const bool enabled_;

  mutable std::mutex mutex_;  // never held while calling into the pool
  std::unordered_map<std::string, std::shared_ptr<worker::WorkerProcess>> workers_;
  std::function<void()> on_all_exited_;
  std::atomic<std::uint64_t> exited_{0};
  std::atomic<std::uint64_t> failed_to_start_{0};
  // Last, so that it is joined first: its calls use the members above.
  BlockingCalls recorder_calls_;
};

}  // namespace tau::gateway
