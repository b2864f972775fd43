#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tau::test {

// A temporary directory removed with everything in it when this goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ExitResult {
  int exit_code = -1;
  std::string stderr_text;
  std::string stdout_text;
};

// Starts the program at the path `argv[0]` with `argv`, the test's own environment minus
// TAU_GATEWAY_* variables plus `env`, and stdout and stderr on the given descriptors (-1 leaves
// them alone). Throws when it cannot be started; the caller waits for the child.
pid_t spawn_process(std::vector<std::string> argv,
                    const std::map<std::string, std::string>& env = {}, int stdout_fd = -1,
                    int stderr_fd = -1);

// Runs the program at the path `argv[0]` until it exits, with the environment of spawn_process,
// and returns its exit code and what it wrote. For small outputs only (read one after the other).
ExitResult run_to_exit(const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& env = {});

// Runs the real tau-gateway binary with `args` until it exits (for start-up refusals and
// --help). TAU_GATEWAY_* variables of the test's own environment are not passed on; `env` adds
// variables.
ExitResult run_gateway_to_exit(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env = {});

// Writes an executable /bin/sh script into `dir` and returns its path (a worker for tests).
std::string write_script(const TempDir& dir, const std::string& name, const std::string& body);

// The store kind a GatewayProcess started without --store reports: "redis" when the suite runs
// under tests/support/with_redis (TAU_TEST_REDIS_URL set), else "sqlite".
std::string default_store_kind();

// The real tau-gateway binary serving on an ephemeral loopback port, with its own state dir.
// The constructor returns once the gateway has logged the port it listens on; the destructor
// stops it with SIGTERM.
class GatewayProcess {
 public:
  explicit GatewayProcess(std::vector<std::string> args = {"--auth-mode", "localhost-dev"},
                          std::map<std::string, std::string> env = {});
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Stops the gateway with SIGTERM and waits for it; returns its exit code (128+signal when
  // killed). The destructor does this if the test did not.
  int stop();
  // Kills the gateway with SIGKILL, as a crash would, and waits for it; returns 128+SIGKILL.
  int crash();
  // Everything the gateway wrote to stderr so far.
  std::string stderr_text();
  // Waits (up to `timeout`) until what the gateway wrote to stderr satisfies `ready`, e.g. an
  // asynchronous log line has arrived; returns the text either way.
  std::string wait_for_stderr(const std::function<bool(const std::string&)>& ready,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  // How long a stopped gateway may take to exit (a sanitizer build on a busy machine included)
  // before the test fails with its threads' stacks.
  static constexpr std::chrono::seconds kStopLimit{120};

  void drain_stderr(int fd);
  int stop_with(int signal);
  // Whether the gateway's stderr reached its end (the gateway exited) within `limit`.
  bool stderr_closed_within(std::chrono::seconds limit);

  TempDir state_dir_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  bool killed_ = false;
  std::uint16_t port_ = 0;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string stderr_;
  bool stderr_closed_ = false;
};

}  // namespace tau::test
