#include "support/gateway_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace tau::test {

namespace {

// The binary's environment: the test's own, minus TAU_GATEWAY_* settings, plus `extra`.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "TAU_GATEWAY_", 12) != 0)
      result.emplace_back(*entry);
  }
  for (const auto& [key, value] : extra)
    result.push_back(key + "=" + value);
  return result;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& s : strings)
    pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Starts the gateway with stdout and stderr on the given pipe ends (-1 leaves them alone).
pid_t spawn_gateway(std::vector<std::string> args, const std::map<std::string, std::string>& env,
                    int stdout_fd, int stderr_fd) {
  args.insert(args.begin(), TAU_GATEWAY_BINARY);
  return spawn_process(args, env, stdout_fd, stderr_fd);
}

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0)
    text.append(buffer, static_cast<size_t>(got));
  return text;
}

// Every thread's backtrace, from gdb when the machine has it (Debian's gdb package).
std::string thread_stacks(pid_t pid) {
  if (::access("/usr/bin/gdb", X_OK) != 0)
    return "(no /usr/bin/gdb to show them)";
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return "(pipe failed)";
  const pid_t gdb = spawn_process(
      {"/usr/bin/gdb", "-p", std::to_string(pid), "-batch", "-nx", "-ex", "thread apply all bt"},
      {}, out[1], out[1]);
  ::close(out[1]);
  std::string text = read_all(out[0]);
  ::close(out[0]);
  ::waitpid(gdb, nullptr, 0);
  return text;
}

}  // namespace

pid_t spawn_process(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
                    int stdout_fd, int stderr_fd) {
  std::vector<std::string> environment = child_environment(env);
  auto argv_pointers = c_strings(argv);
  auto envp = c_strings(environment);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_fd >= 0)
    posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  if (stderr_fd >= 0)
    posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  pid_t pid = -1;
  const int error =
      posix_spawn(&pid, argv_pointers[0], &actions, nullptr, argv_pointers.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0)
    throw std::runtime_error("posix_spawn " + argv.front() + ": " + std::strerror(error));
  return pid;
}

TempDir::TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "tau-gateway-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

ExitResult run_to_exit(const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& env) {
  int out[2];
  int err[2];
  // Close-on-exec, so that no other process started meanwhile holds these ends open.
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  const pid_t pid = spawn_process(argv, env, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  ExitResult result;
  // The outputs are small (a help text at most), so reading one after the other cannot block.
  result.stdout_text = read_all(out[0]);
  result.stderr_text = read_all(err[0]);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

ExitResult run_gateway_to_exit(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = args;
  argv.insert(argv.begin(), TAU_GATEWAY_BINARY);
  return run_to_exit(argv, env);
}

std::string write_script(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
  return path;
}

std::string default_store_kind() {
  return std::getenv("TAU_TEST_REDIS_URL") != nullptr ? "redis" : "sqlite";
}

GatewayProcess::GatewayProcess(std::vector<std::string> args,
                               std::map<std::string, std::string> env) {
  args.insert(args.end(), {"--bind", "127.0.0.1:0"});
  // Raw requests in the tests name their Host `x`; every other client sends 127.0.0.1:<port>,
  // which the gateway allows by default.
  args.insert(args.end(), {"--allowed-host", "x"});
  auto state_dir = std::find(args.begin(), args.end(), "--state-dir");
  if (state_dir == args.end()) {
    args.insert(args.end(), {"--state-dir", state_dir_.path()});
    state_dir = args.end() - 1;
  } else {
    ++state_dir;
  }
  // Under tests/support/with_redis, gateways that name no store keep their sessions in that
  // Redis, under a prefix named after their state dir: the whole suite then runs against the
  // shared store, and a gateway restarted on the same state dir finds its sessions again.
  const char* redis_url = std::getenv("TAU_TEST_REDIS_URL");
  if (redis_url != nullptr && std::find(args.begin(), args.end(), "--store") == args.end()) {
    const std::string prefix = "tau:test:" + *state_dir + ":";
    args.insert(args.end(), {"--store", redis_url, "--redis-prefix", prefix});
  }
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  pid_ = spawn_gateway(args, env, -1, err[1]);
  ::close(err[1]);
  reader_ = std::thread([this, fd = err[0]] { drain_stderr(fd); });

  static const std::regex kListening(R"(listening on http://127\.0\.0\.1:(\d+))");
  std::unique_lock lock(mutex_);
  std::smatch match;
  const bool started = changed_.wait_for(lock, std::chrono::seconds(20), [&] {
    return std::regex_search(stderr_, match, kListening) || stderr_closed_;
  });
  if (!started || match.empty()) {
    const std::string output = stderr_;
    lock.unlock();
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reader_.join();
    throw std::runtime_error("gateway did not start; stderr:\n" + output);
  }
  port_ = static_cast<std::uint16_t>(std::stoi(match[1].str()));
}

int GatewayProcess::stop() {
  return stop_with(SIGTERM);
}

int GatewayProcess::crash() {
  killed_ = true;
  return stop_with(SIGKILL);
}

int GatewayProcess::stop_with(int signal) {
  if (exit_code_)
    return *exit_code_;
  ::kill(pid_, signal);
  // Its stderr closes when it exits (the reader sees the end of the pipe).
  bool exited = false;
#ifdef TAU_THREAD_SANITIZER
  // ThreadSanitizer runs a signal's handler late, and in rare interleavings never
  // (google/sanitizers#1179, #1855): a gateway that has not exited within a while gets the
  // signal once more, as an operator would send it. Release and ASan builds, where a lost
  // signal would be our bug, get it once.
  exited = stderr_closed_within(std::chrono::seconds(20));
  if (!exited && signal != SIGKILL)
    ::kill(pid_, signal);
#endif
  if (!exited)
    exited = stderr_closed_within(kStopLimit);
  // A gateway that ignores SIGTERM would hang the whole test binary until CTest's timeout,
  // with nothing to show for it: say where each of its threads is, then kill it.
  const std::string stacks = exited ? std::string() : thread_stacks(pid_);
  if (!exited)
    ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  reader_.join();
  if (!exited) {
    ADD_FAILURE() << "gateway (or a process holding its stderr) still running "
                  << kStopLimit.count() << " s after signal " << signal << "; its threads:\n"
                  << stacks << "\nstderr:\n"
                  << stderr_text();
  }
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return *exit_code_;
}

bool GatewayProcess::stderr_closed_within(std::chrono::seconds limit) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, limit, [&] { return stderr_closed_; });
}

GatewayProcess::~GatewayProcess() {
  if (killed_) {
    stop();
    return;
  }
  EXPECT_EQ(stop(), 0) << "gateway did not exit cleanly on SIGTERM; stderr:\n" << stderr_;
}

std::string GatewayProcess::stderr_text() {
  std::lock_guard lock(mutex_);
  return stderr_;
}

std::string GatewayProcess::wait_for_stderr(const std::function<bool(const std::string&)>& ready,
                                            std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return stderr_closed_ || ready(stderr_); });
  return stderr_;
}

void GatewayProcess::drain_stderr(int fd) {
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0) {
    std::lock_guard lock(mutex_);
    stderr_.append(buffer, static_cast<size_t>(got));
    changed_.notify_all();
  }
  ::close(fd);
  std::lock_guard lock(mutex_);
  stderr_closed_ = true;
  changed_.notify_all();
}

}  // namespace tau::test
