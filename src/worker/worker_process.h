#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "worker/resource_limits.h"

namespace tau::worker {

using EnvPairs = std::vector<std::pair<std::string, std::string>>;

struct WorkerCommand {
  std::string command;  // a path, or a name looked up in the gateway's PATH; no shell
  std::vector<std::string> args;
  EnvPairs env;  // added to (and overriding) the gateway's environment
};

struct WorkerOptions {
  std::chrono::milliseconds kill_grace{5000};
  std::size_t max_line_bytes = 65536;
  // A longer output line is dropped whole (the listener's on_dropped_line) instead of being
  // reported in pieces: for agents that speak one JSON message per line.
  bool drop_long_lines = false;
  // Follow-up bytes waiting for a worker that does not read its stdin.
  std::size_t max_stdin_backlog_bytes = 1024 * 1024;

  // The worker's environment is the gateway's, minus every TAU_GATEWAY_* variable and every
  // variable whose value equals one of `withheld_values` (the gateway's secrets; empty ones are
  // ignored), plus the command's pairs, plus the session's. With `clear_environment` only PATH,
  // HOME and LANG are taken from the gateway's (and still only if not withheld).
  std::vector<std::string> withheld_values;
  bool clear_environment = false;

  // Containment. With a supervisor (the tau-worker-supervisor executable, see
  // supervisor_protocol.h; default_supervisor_path()), it runs between the gateway and the
  // worker, and everything the worker starts, daemons in sessions of their own included, is
  // stopped when the worker exits, when it is terminated, and when the gateway exits or is
  // killed. Empty: the worker is the gateway's own child, and only its process group is stopped.
  std::string supervisor_path;
  ResourceLimits rlimits;
};

// tau-worker-supervisor in the directory of the running executable (the gateway's), or empty
// when that cannot be found out.
std::string default_supervisor_path();

struct ExitStatus {
  bool signaled = false;
  int value = 0;  // the exit code, or the signal number when signaled
  bool success() const { return !signaled && value == 0; }
  std::string describe() const;  // "exit code 3", "killed by signal 9 (Killed)"
};

enum class OutputStream { stdout_stream, stderr_stream };

// What a worker reports, always on the worker's strand, in the order it happened: every output
// line before the exit.
class WorkerListener {
 public:
  virtual ~WorkerListener() = default;
  virtual void on_output(OutputStream stream, std::string line) = 0;
  // With WorkerOptions::drop_long_lines: a line over max_line_bytes was dropped.
  virtual void on_dropped_line(OutputStream /*stream*/, std::size_t /*line_bytes*/) {}
  virtual void on_exit(const ExitStatus& status) = 0;
};

class SpawnError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One supervised child process: its own process group, killed with the gateway (parent-death
// signal, or with a supervisor its whole process tree), stdout and stderr read as lines without
// blocking any thread, stdin written with a bounded backlog, its exit noticed the moment it
// happens (pidfd) and reaped.
class WorkerProcess : public std::enable_shared_from_this<WorkerProcess> {
 public:
  // Starts the process in `working_dir`, which must not itself be a symbolic link (its parents
  // may be). Throws SpawnError naming the command and the OS error
  // when it cannot be started (then no process is left behind). `strand` runs every callback;
  // none comes before start() is called, so the caller can first record the worker.
  static std::shared_ptr<WorkerProcess> spawn(boost::asio::any_io_executor strand,
                                              const WorkerCommand& command,
                                              const std::string& working_dir,
                                              const EnvPairs& extra_env, WorkerOptions options,
                                              std::shared_ptr<WorkerListener> listener);
  // A worker whose exit was not reaped yet is killed (its tree, with a supervisor) and reaped.
  ~WorkerProcess();

  // Thread-safe. Queues `line` and a newline for the worker's stdin. Returns why it could not:
  // stdin closed by the worker, the worker gone, or the backlog limit reached.
  std::optional<std::string> write_line(std::string_view line);
  // Begins reading output and watching for the exit.
  void start();
  // Thread-safe. SIGTERM to the worker's process group, then SIGKILL after the grace period (with
  // a supervisor: to the whole tree, and the supervisor itself only should it not stop within
  // a second grace period).
  void terminate();
  // The gateway's child: the worker, or its supervisor when there is one.
  pid_t pid() const { return pid_; }

  // Use spawn().
  WorkerProcess(boost::asio::any_io_executor strand, pid_t pid, int pidfd, int stdin_fd,
                int stdout_fd, int stderr_fd, WorkerOptions options,
                std::shared_ptr<WorkerListener> listener);

 private:
  boost::asio::awaitable<void> read_output(boost::asio::posix::stream_descriptor& pipe,
                                           OutputStream stream);
  boost::asio::awaitable<void> wait_for_exit();
  boost::asio::awaitable<void> flush_stdin();
  // Writes what it can of the backlog without blocking; false when stdin has failed.
  bool write_pending_locked();
  void fail_stdin_locked(std::string reason);
  bool supervised() const { return !options_.supervisor_path.empty(); }
  // The polite stop (SIGTERM) and the forced one (SIGKILL; a supervisor is told to kill the tree).
  void signal_stop();
  void signal_kill();

  boost::asio::any_io_executor strand_;
  const pid_t pid_;
  const WorkerOptions options_;
  const std::shared_ptr<WorkerListener> listener_;
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::posix::stream_descriptor stdout_;
  boost::asio::posix::stream_descriptor stderr_;
  boost::asio::steady_timer kill_timer_;
  boost::asio::steady_timer output_closed_;  // cancelled when a pipe reaches its end
  int open_outputs_ = 2;
  // strand only: when output was last read and handled (handling time is not silence)
  std::chrono::steady_clock::time_point last_output_{};
  bool reaped_ = false;       // strand only: the pid is no longer ours to signal
  bool exited_ = false;       // strand only: the exit has been reported
  bool terminating_ = false;  // strand only

  std::mutex stdin_mutex_;  // guards everything about stdin; held only for non-blocking writes
  boost::asio::posix::stream_descriptor stdin_;
  std::string stdin_backlog_;
  bool stdin_flush_scheduled_ = false;
  std::optional<std::string> stdin_failure_;
};

}  // namespace tau::worker
