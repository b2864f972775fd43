#include "worker/worker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/process_probe.h"

extern char** environ;

namespace tau::worker {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Lines = std::vector<std::string>;

// Generous: only a broken implementation ever waits this long.
constexpr auto kDeadline = 20s;

// A write to a pipe whose reader is gone must fail with EPIPE, not kill the test (the gateway
// ignores SIGPIPE the same way).
class IgnoreSigpipe : public ::testing::Environment {
 public:
  void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }
};
[[maybe_unused]] ::testing::Environment* const kIgnoreSigpipe =
    ::testing::AddGlobalTestEnvironment(new IgnoreSigpipe);

std::size_t open_fd_count() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd"))
    ++count;
  return count;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Collects what a worker reports, from whichever thread, and lets the test wait for it.
class Recorder : public WorkerListener {
 public:
  void on_output(OutputStream stream, std::string line) override {
    enter();
    {
      std::lock_guard lock(mutex_);
      if (exit_)
        output_after_exit_ = true;
      (stream == OutputStream::stdout_stream ? stdout_ : stderr_).push_back(std::move(line));
    }
    changed_.notify_all();
    leave();
  }

  void on_exit(const ExitStatus& status) override {
    enter();
    {
      std::lock_guard lock(mutex_);
      ++exit_calls_;
      exit_ = status;
      exited_at_ = Clock::now();
    }
    changed_.notify_all();
    leave();
  }

  // Waits until `done` holds (checked under the lock); false when the deadline passed first.
  bool wait_until(const std::function<bool()>& done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kDeadline, done);
  }

  std::optional<ExitStatus> wait_for_exit() {
    wait_until([this] { return exit_.has_value(); });
    std::lock_guard lock(mutex_);
    return exit_;
  }

  bool wait_for_stdout_lines(std::size_t count) {
    return wait_until([&] { return stdout_.size() >= count; });
  }

  bool wait_for_stdout_line(const std::string& line) {
    return wait_until(
        [&] { return std::find(stdout_.begin(), stdout_.end(), line) != stdout_.end(); });
  }

  Lines stdout_lines() const {
    std::lock_guard lock(mutex_);
    return stdout_;
  }
  Lines stderr_lines() const {
    std::lock_guard lock(mutex_);
    return stderr_;
  }
  bool exited() const {
    std::lock_guard lock(mutex_);
    return exit_.has_value();
  }
  int exit_calls() const {
    std::lock_guard lock(mutex_);
    return exit_calls_;
  }
  Clock::time_point exited_at() const {
    std::lock_guard lock(mutex_);
    return exited_at_;
  }
  bool output_after_exit() const {
    std::lock_guard lock(mutex_);
    return output_after_exit_;
  }
  bool overlapping_callbacks() const { return overlapping_.load(); }
  bool anything_reported() const {
    std::lock_guard lock(mutex_);
    return exit_calls_ > 0 || !stdout_.empty() || !stderr_.empty();
  }

 private:
  // Callbacks run on the worker's strand, so they never overlap.
  void enter() {
    if (in_callback_.exchange(true))
      overlapping_ = true;
  }
  void leave() { in_callback_ = false; }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Lines stdout_;
  Lines stderr_;
  std::optional<ExitStatus> exit_;
  int exit_calls_ = 0;
  Clock::time_point exited_at_{};
  bool output_after_exit_ = false;
  std::atomic<bool> in_callback_{false};
  std::atomic<bool> overlapping_{false};
};

struct Running {
  std::shared_ptr<WorkerProcess> worker;
  std::shared_ptr<Recorder> recorder;
};

class WorkerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tau-worker-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    dir_ = pattern;
    // Asio creates its reactor (epoll, eventfd and timerfd) with the first I/O object: do it now,
    // so descriptor counts taken by the tests see only what the workers open.
    asio::steady_timer reactor_warmup(io_);
    io_thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    // Whatever a failed test left running is stopped before the I/O thread goes.
    for (auto& running : started_) {
      if (!running.recorder->exited()) {
        running.worker->terminate();
        EXPECT_TRUE(running.recorder->wait_for_exit().has_value()) << "a worker did not stop";
      }
      EXPECT_FALSE(running.recorder->overlapping_callbacks());
      EXPECT_FALSE(running.recorder->output_after_exit());
      EXPECT_LE(running.recorder->exit_calls(), 1);
    }
    started_.clear();
    guard_.reset();
    io_.stop();
    io_thread_.join();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Writes an executable /bin/sh script into the temporary directory.
  std::string script(const std::string& name, const std::string& body, mode_t mode = 0755) {
    const std::string path = dir_ + "/" + name;
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << "#!/bin/sh\n" << body << "\n";
    }
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  // `options`, with the worker under tau-worker-supervisor when the whole suite runs that way
  // (the worker.supervised test: a supervisor must not change what a worker sees or reports).
  static WorkerOptions as_asked(WorkerOptions options) {
    if (supervise_all_workers() && options.supervisor_path.empty())
      options.supervisor_path = TAU_WORKER_SUPERVISOR_BINARY;
    return options;
  }
  static bool supervise_all_workers() {
    return std::getenv("TAU_TEST_SUPERVISE_ALL_WORKERS") != nullptr;
  }

  std::shared_ptr<WorkerProcess> spawn_only(const WorkerCommand& command,
                                            std::shared_ptr<Recorder> recorder,
                                            WorkerOptions options = {},
                                            const EnvPairs& extra_env = {},
                                            std::optional<std::string> working_dir = {}) {
    auto worker = WorkerProcess::spawn(asio::make_strand(io_), command, working_dir.value_or(dir_),
                                       extra_env, as_asked(options), recorder);
    started_.push_back({worker, recorder});
    return worker;
  }

  Running run(const std::string& body, WorkerOptions options = {},
              std::vector<std::string> args = {}) {
    Running running{nullptr, std::make_shared<Recorder>()};
    running.worker = spawn_only(WorkerCommand{script("worker.sh", body), std::move(args), {}},
                                running.recorder, options);
    running.worker->start();
    return running;
  }

  // Lets the I/O thread run everything queued so far (and then once more, for what that queued).
  void drain_io() {
    for (int round = 0; round < 3; ++round) {
      std::promise<void> done;
      asio::post(io_, [&] { done.set_value(); });
      ASSERT_EQ(done.get_future().wait_for(kDeadline), std::future_status::ready);
    }
  }

  // Waits until nothing holds the worker any more (its coroutines have finished).
  bool wait_released(std::weak_ptr<WorkerProcess> worker) {
    const auto deadline = Clock::now() + kDeadline;
    while (!worker.expired()) {
      if (Clock::now() > deadline)
        return false;
      drain_io();
    }
    return true;
  }

  std::string dir_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(io_);
  std::thread io_thread_;
  std::vector<Running> started_;
};

// --- output and exit -------------------------------------------------------------------------

TEST_F(WorkerProcessTest, StdoutAndStderrLinesArriveInOrderBeforeTheExit) {
  auto [worker, recorder] =
      run("echo out1\n"
          "echo err1 >&2\n"
          "echo out2\n"
          "echo\n"  // an empty line is skipped
          "echo err2 >&2\n"
          "printf 'out3\\r\\n'\n"
          "printf 'no newline at the end'\n");
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success());
  EXPECT_EQ(recorder->stdout_lines(), (Lines{"out1", "out2", "out3", "no newline at the end"}));
  EXPECT_EQ(recorder->stderr_lines(), (Lines{"err1", "err2"}));
  EXPECT_FALSE(recorder->output_after_exit());
  EXPECT_EQ(recorder->exit_calls(), 1);
}

TEST_F(WorkerProcessTest, ExitCodeZeroIsSuccess) {
  auto [worker, recorder] = run("exit 0");
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success());
  EXPECT_FALSE(status->signaled);
  EXPECT_EQ(status->value, 0);
  EXPECT_EQ(status->describe(), "exit code 0");
}

TEST_F(WorkerProcessTest, NonZeroExitCodeIsReported) {
  auto [worker, recorder] = run("echo bye\nexit 3");
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->success());
  EXPECT_FALSE(status->signaled);
  EXPECT_EQ(status->value, 3);
  EXPECT_EQ(status->describe(), "exit code 3");
  EXPECT_EQ(recorder->stdout_lines(), (Lines{"bye"}));
}

TEST_F(WorkerProcessTest, KilledBySignalIsReported) {
  auto [worker, recorder] = run("echo dying\nkill -9 $$\necho not reached");
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->success());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, 9);
  EXPECT_EQ(status->describe().rfind("killed by signal 9", 0), 0u) << status->describe();
  EXPECT_EQ(recorder->stdout_lines(), (Lines{"dying"}));
}

TEST_F(WorkerProcessTest, ExitStatusDescribe) {
  EXPECT_EQ((ExitStatus{false, 0}).describe(), "exit code 0");
  EXPECT_EQ((ExitStatus{false, 127}).describe(), "exit code 127");
  EXPECT_EQ((ExitStatus{true, 9}).describe(), "killed by signal 9 (Killed)");
  EXPECT_EQ((ExitStatus{true, 15}).describe(), "killed by signal 15 (Terminated)");
  EXPECT_TRUE((ExitStatus{false, 0}).success());
  EXPECT_FALSE((ExitStatus{true, 0}).success());
  EXPECT_FALSE((ExitStatus{false, 1}).success());
}

TEST_F(WorkerProcessTest, NothingIsReportedBeforeStartEvenIfTheWorkerAlreadyExited) {
  auto recorder = std::make_shared<Recorder>();
  auto worker =
      spawn_only(WorkerCommand{script("quick.sh", "echo early\nexit 3"), {}, {}}, recorder);
  // Wait for the exit without reaping, let the I/O thread see the pidfd become readable, and
  // only then start: the exit must still be noticed.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(worker->pid()), &info, WEXITED | WNOWAIT), 0);
  drain_io();
  EXPECT_FALSE(recorder->anything_reported());
  worker->start();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->describe(), "exit code 3");
  EXPECT_EQ(recorder->stdout_lines(), (Lines{"early"}));
}

TEST_F(WorkerProcessTest, LongLinesAreSplitAndInvalidUtf8Replaced) {
  WorkerOptions options;
  options.max_line_bytes = 10;
  auto [worker, recorder] =
      run("printf '%s\\n' 0123456789abcdefghijXYZ\n"
          "printf 'ok\\377bad\\n'\n",
          options);
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(recorder->stdout_lines(), (Lines{"0123456789", "abcdefghij", "XYZ",
                                             "ok\xEF\xBF\xBD"
                                             "bad"}));
}

TEST_F(WorkerProcessTest, FloodOfOutputArrivesCompleteAndInOrder) {
  auto [worker, recorder] = run("seq 1 100000\necho done >&2");
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success());
  const Lines lines = recorder->stdout_lines();
  ASSERT_EQ(lines.size(), 100000u);
  for (std::size_t i = 0; i < lines.size(); ++i)
    ASSERT_EQ(lines[i], std::to_string(i + 1)) << "line " << i;
  EXPECT_EQ(recorder->stderr_lines(), (Lines{"done"}));
  EXPECT_FALSE(recorder->output_after_exit());
}

TEST_F(WorkerProcessTest, ExitIsReportedEvenWhenALeftoverProcessHoldsThePipes) {
  // The background sleep keeps stdout open after the worker itself exits.
  auto [worker, recorder] = run("sleep 30 &\necho \"child:$!\"\nexit 0");
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success());
  const Lines lines = recorder->stdout_lines();
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0].rfind("child:", 0), 0u);
  ::kill(std::stoi(lines[0].substr(6)), SIGKILL);  // the leftover is not the worker's to stop
}

// --- how the process is started ---------------------------------------------------------------

TEST_F(WorkerProcessTest, RunsInTheWorkingDirectory) {
  auto [worker, recorder] = run("pwd -P");
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(recorder->stdout_lines(), (Lines{fs::canonical(dir_).string()}));
}

TEST_F(WorkerProcessTest, SeesTheEnvironmentWithOverrides) {
  ASSERT_EQ(::setenv("TAU_TEST_INHERITED", "inherited", 1), 0);
  ASSERT_EQ(::setenv("TAU_TEST_OVERRIDDEN", "from-parent", 1), 0);
  auto recorder = std::make_shared<Recorder>();
  const std::string path =
      script("env.sh",
             "echo \"ws=$TAU_WORKSPACE_ID\"\n"
             "echo \"session=$TAU_EXTERNAL_SESSION_ID\"\n"
             "echo \"command=$TAU_TEST_COMMAND\"\n"
             "echo \"inherited=$TAU_TEST_INHERITED\"\n"
             "echo \"overridden=$TAU_TEST_OVERRIDDEN\"\n"
             "echo \"both=$TAU_TEST_BOTH\"\n"
             // The raw environment the process was started with: each name exactly once.
             "echo \"entries=$(tr '\\0' '\\n' </proc/$$/environ | grep -c -e '^TAU_TEST_BOTH=' "
             "-e '^TAU_TEST_OVERRIDDEN=')\"\n");
  WorkerCommand command{path,
                        {},
                        {{"TAU_TEST_COMMAND", "from-command"},
                         {"TAU_TEST_OVERRIDDEN", "from-command"},
                         {"TAU_TEST_BOTH", "from-command"}}};
  const EnvPairs extra{{"TAU_WORKSPACE_ID", "ws-42"},
                       {"TAU_EXTERNAL_SESSION_ID", "session-7"},
                       {"TAU_TEST_BOTH", "from-extra"}};
  auto worker = spawn_only(command, recorder, {}, extra);
  worker->start();
  ::unsetenv("TAU_TEST_INHERITED");
  ::unsetenv("TAU_TEST_OVERRIDDEN");
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(recorder->stdout_lines(),
            (Lines{"ws=ws-42", "session=session-7", "command=from-command", "inherited=inherited",
                   "overridden=from-command", "both=from-extra", "entries=2"}));
}

// Sets environment variables for one test and puts back what was there before.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>>& variables) {
    for (const auto& [name, value] : variables) {
      const char* old = std::getenv(name.c_str());
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      EXPECT_EQ(::setenv(name.c_str(), value.c_str(), 1), 0) << name;
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, old] : saved_) {
      if (old)
        ::setenv(name.c_str(), old->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The environment /usr/bin/env reports when started as a worker, as name -> value.
std::map<std::string, std::string> as_environment(const Lines& lines) {
  std::map<std::string, std::string> variables;
  for (const auto& line : lines) {
    const auto equals = line.find('=');
    variables[line.substr(0, equals)] = equals == std::string::npos ? "" : line.substr(equals + 1);
  }
  return variables;
}

TEST_F(WorkerProcessTest, GatewayVariablesAndWithheldSecretsAreNotInherited) {
  const ScopedEnv env({{"TAU_GATEWAY_AUTH_TOKEN", "token-secret"},
                       {"TAU_GATEWAY_AUTH_PASSWORD", "password-secret"},
                       {"TAU_GATEWAY_REDIS_PASSWORD", "redis-secret"},
                       {"TAU_GATEWAY_BIND_PORT", "8787"},
                       {"TAU_TEST_COPY_OF_TOKEN", "token-secret"},
                       {"TAU_TEST_COPY_OF_REDIS", "redis-secret"},
                       {"TAU_TEST_CONTAINS_TOKEN", "x-token-secret-x"},
                       {"TAU_TEST_EMPTY", ""},
                       {"TAU_TEST_PLAIN", "plain"}});
  WorkerOptions options;
  options.withheld_values = {"token-secret", "", "redis-secret"};
  auto recorder = std::make_shared<Recorder>();
  const WorkerCommand command{
      "/usr/bin/env",
      {},
      {{"TAU_TEST_EXPLICIT", "explicit"}, {"TAU_TEST_EXPLICIT_SECRET", "redis-secret"}}};
  spawn_only(command, recorder, options, {{"TAU_WORKSPACE_ID", "ws-1"}})->start();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(status->success()) << status->describe();
  const auto variables = as_environment(recorder->stdout_lines());
  for (const auto& [name, value] : variables) {
    EXPECT_NE(name.rfind("TAU_GATEWAY_", 0), 0u) << name << "=" << value;
    if (name != "TAU_TEST_EXPLICIT_SECRET") {
      EXPECT_NE(value, "token-secret") << name;
      EXPECT_NE(value, "redis-secret") << name;
    }
  }
  EXPECT_FALSE(variables.contains("TAU_TEST_COPY_OF_TOKEN"));
  EXPECT_FALSE(variables.contains("TAU_TEST_COPY_OF_REDIS"));
  // Equality, not substring; an empty secret withholds nothing.
  EXPECT_EQ(variables.at("TAU_TEST_CONTAINS_TOKEN"), "x-token-secret-x");
  EXPECT_EQ(variables.at("TAU_TEST_EMPTY"), "");
  EXPECT_EQ(variables.at("TAU_TEST_PLAIN"), "plain");
  // What the operator passes explicitly is the worker's: only the inherited values are filtered.
  EXPECT_EQ(variables.at("TAU_TEST_EXPLICIT"), "explicit");
  EXPECT_EQ(variables.at("TAU_TEST_EXPLICIT_SECRET"), "redis-secret");
  EXPECT_EQ(variables.at("TAU_WORKSPACE_ID"), "ws-1");
  EXPECT_EQ(variables.at("PATH"), std::getenv("PATH"));
}

TEST_F(WorkerProcessTest, ClearEnvironmentKeepsOnlyPathHomeLangAndTheGivenPairs) {
  const ScopedEnv env({{"HOME", "/home/tau-test"},
                       {"LANG", "C.UTF-8"},
                       {"TAU_TEST_PLAIN", "plain"},
                       {"TAU_GATEWAY_AUTH_TOKEN", "token-secret"}});
  WorkerOptions options;
  options.clear_environment = true;
  auto recorder = std::make_shared<Recorder>();
  const WorkerCommand command{"/usr/bin/env", {}, {{"TAU_TEST_EXPLICIT", "explicit"}}};
  spawn_only(command, recorder, options, {{"TAU_WORKSPACE_ID", "ws-1"}})->start();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(status->success()) << status->describe();
  const std::map<std::string, std::string> expected{{"PATH", std::getenv("PATH")},
                                                    {"HOME", "/home/tau-test"},
                                                    {"LANG", "C.UTF-8"},
                                                    {"TAU_TEST_EXPLICIT", "explicit"},
                                                    {"TAU_WORKSPACE_ID", "ws-1"}};
  EXPECT_EQ(as_environment(recorder->stdout_lines()), expected);
}

TEST_F(WorkerProcessTest, ArgumentsArePassedInOrderWithoutAShell) {
  auto [worker, recorder] = run("for a in \"$@\"; do echo \"arg:[$a]\"; done\necho \"count:$#\"",
                                {}, {"one", "two words", "$HOME", "*", "", "x;y|z", "'quoted'"});
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(recorder->stdout_lines(),
            (Lines{"arg:[one]", "arg:[two words]", "arg:[$HOME]", "arg:[*]", "arg:[]",
                   "arg:[x;y|z]", "arg:['quoted']", "count:7"}));
}

TEST_F(WorkerProcessTest, CommandNameIsLookedUpInPath) {
  const std::string bin = dir_ + "/bin";
  ASSERT_TRUE(fs::create_directory(bin));
  script("bin/tau-path-worker", "echo found-in-path");
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ASSERT_EQ(::setenv("PATH", (bin + ":" + old_path).c_str(), 1), 0);
  auto recorder = std::make_shared<Recorder>();
  std::shared_ptr<WorkerProcess> worker;
  try {
    worker = spawn_only(WorkerCommand{"tau-path-worker", {}, {}}, recorder);
  } catch (...) {
    ::setenv("PATH", old_path.c_str(), 1);
    throw;
  }
  ::setenv("PATH", old_path.c_str(), 1);
  worker->start();
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(recorder->stdout_lines(), (Lines{"found-in-path"}));
}

TEST_F(WorkerProcessTest, CommandNameIsNotLookedUpInTheWorkingDirectory) {
  // A workspace holding an executable named like the command must not get it run.
  script("tau-workspace-only-worker", "echo ran-from-workspace");
  auto recorder = std::make_shared<Recorder>();
  try {
    spawn_only(WorkerCommand{"tau-workspace-only-worker", {}, {}}, recorder)->start();
    FAIL() << "spawned a command found only in the working directory";
  } catch (const SpawnError& error) {
    EXPECT_TRUE(contains(error.what(), "No such file or directory")) << error.what();
  }
}

TEST_F(WorkerProcessTest, InheritsOnlyStandardDescriptors) {
  // Asio opens sockets without close-on-exec; the gateway's listener must not leak to workers.
  asio::ip::tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
  const int plain = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC either
  ASSERT_GE(plain, 0);
  const auto target = [](int fd) {
    return fs::read_symlink("/proc/self/fd/" + std::to_string(fd)).string();
  };
  const std::string socket_target = target(acceptor.native_handle());
  auto [worker, recorder] =
      run("for f in /proc/$$/fd/*; do echo \"${f##*/} $(readlink \"$f\")\"; done");
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  ::close(plain);
  std::map<int, std::string> fds;
  for (const auto& line : recorder->stdout_lines()) {
    const auto space = line.find(' ');
    fds[std::stoi(line.substr(0, space))] =
        space == std::string::npos ? "" : line.substr(space + 1);
  }
  for (const auto& [fd, where] : fds) {
    EXPECT_NE(where, socket_target) << "fd " << fd;
    EXPECT_FALSE(fd == plain && where == "/dev/null") << "fd " << fd;
  }
  for (int fd : {0, 1, 2}) {
    ASSERT_TRUE(fds.contains(fd)) << "fd " << fd;
    EXPECT_EQ(fds[fd].rfind("pipe:", 0), 0u) << "fd " << fd << " " << fds[fd];
  }
}

TEST_F(WorkerProcessTest, RunsInItsOwnProcessGroup) {
  auto [worker, recorder] = run("echo \"$$ $(cut -d' ' -f5 /proc/$$/stat)\"\nexit 0");
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  const Lines lines = recorder->stdout_lines();
  ASSERT_EQ(lines.size(), 1u);
  const auto space = lines[0].find(' ');
  const std::string pid = lines[0].substr(0, space);
  EXPECT_EQ(lines[0].substr(space + 1), pid) << "the worker leads its own process group";
  // The gateway's child is the worker itself, or its supervisor in a group of its own.
  if (!supervise_all_workers())
    EXPECT_EQ(pid, std::to_string(worker->pid()));
  else
    EXPECT_NE(pid, std::to_string(worker->pid()));
}

// --- spawn failures -------------------------------------------------------------------------

class SpawnFailureTest : public WorkerProcessTest {
 protected:
  // Spawning must throw naming the command and `os_error`, and leave no child and no fd behind.
  void expect_spawn_error(const WorkerCommand& command, const std::string& os_error,
                          std::optional<std::string> working_dir = {}) {
    const std::size_t fds_before = open_fd_count();
    auto recorder = std::make_shared<Recorder>();
    try {
      spawn_only(command, recorder, {}, {}, working_dir);
      ADD_FAILURE() << "spawn did not throw";
    } catch (const SpawnError& error) {
      EXPECT_TRUE(contains(error.what(), "'" + command.command + "'")) << error.what();
      EXPECT_TRUE(contains(error.what(), os_error)) << error.what();
    }
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
    EXPECT_EQ(open_fd_count(), fds_before);
    drain_io();
    EXPECT_FALSE(recorder->anything_reported());
  }
};

TEST_F(SpawnFailureTest, MissingCommandPath) {
  expect_spawn_error(WorkerCommand{dir_ + "/does-not-exist", {}, {}}, "No such file or directory");
}

TEST_F(SpawnFailureTest, MissingCommandName) {
  expect_spawn_error(WorkerCommand{"tau-no-such-worker-command", {}, {}},
                     "No such file or directory");
}

TEST_F(SpawnFailureTest, NonExecutableFile) {
  expect_spawn_error(WorkerCommand{script("not-executable.sh", "echo hi", 0644), {}, {}},
                     "Permission denied");
}

TEST_F(SpawnFailureTest, DirectoryAsCommand) {
  expect_spawn_error(WorkerCommand{dir_, {}, {}}, "Permission denied");
}

TEST_F(SpawnFailureTest, MissingWorkingDirectory) {
  expect_spawn_error(WorkerCommand{script("fine.sh", "echo hi"), {}, {}},
                     "No such file or directory", dir_ + "/no-such-dir");
}

TEST_F(SpawnFailureTest, WorkingDirectoryIsAFile) {
  const std::string file = script("a-file", "echo hi");
  expect_spawn_error(WorkerCommand{script("fine.sh", "echo hi"), {}, {}}, "Not a directory", file);
}

TEST_F(SpawnFailureTest, WorkingDirectoryIsASymlink) {
  // Even when the link was planted after the gateway checked the directory: the worker does not
  // start where it points. (open(2) with O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a link.)
  std::filesystem::create_directory(dir_ + "/real");
  std::filesystem::create_directory_symlink(dir_ + "/real", dir_ + "/link");
  expect_spawn_error(WorkerCommand{script("fine.sh", "echo hi"), {}, {}}, "Not a directory",
                     dir_ + "/link");
}

// --- stdin ----------------------------------------------------------------------------------

TEST_F(WorkerProcessTest, WrittenLinesReachStdinAndComeBack) {
  auto [worker, recorder] =
      run("while read -r line; do\n"
          "  echo \"got:$line\"\n"
          "  [ \"$line\" = bye ] && exit 0\n"
          "done\n"
          "exit 5");
  EXPECT_EQ(worker->write_line("hello"), std::nullopt);
  EXPECT_EQ(worker->write_line("two words and a $VAR"), std::nullopt);
  EXPECT_EQ(worker->write_line("\xE2\x82\xAC"), std::nullopt);
  EXPECT_EQ(worker->write_line("bye"), std::nullopt);
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success()) << status->describe();
  EXPECT_EQ(recorder->stdout_lines(),
            (Lines{"got:hello", "got:two words and a $VAR", "got:\xE2\x82\xAC", "got:bye"}));
}

TEST_F(WorkerProcessTest, WriteAfterExitFails) {
  auto [worker, recorder] = run("exit 0");
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  const auto failure = worker->write_line("too late");
  ASSERT_TRUE(failure.has_value());
  EXPECT_TRUE(contains(*failure, "exited")) << *failure;
  EXPECT_TRUE(contains(*failure, "exit code 0")) << *failure;
}

TEST_F(WorkerProcessTest, WriteAfterTheWorkerClosedStdinFails) {
  auto [worker, recorder] = run("exec 0<&-\necho closed\nexec sleep 30");
  ASSERT_TRUE(recorder->wait_for_stdout_line("closed"));
  const auto failure = worker->write_line("nobody reads this");
  ASSERT_TRUE(failure.has_value());
  EXPECT_TRUE(contains(*failure, "stdin")) << *failure;
  EXPECT_TRUE(contains(*failure, "Broken pipe")) << *failure;
  // It stays failed.
  EXPECT_EQ(worker->write_line("again"), failure);
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGTERM);
}

TEST_F(WorkerProcessTest, StdinBacklogIsBounded) {
  WorkerOptions options;
  options.max_stdin_backlog_bytes = 4096;
  auto [worker, recorder] = run("echo ready\nexec sleep 30", options);
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  const std::string line(999, 'x');  // 1000 bytes with the newline
  std::optional<std::string> failure;
  std::size_t accepted = 0;
  // The pipe takes 64 KiB at most, the backlog 4 KiB: well before 1 MiB the writes must fail.
  for (int i = 0; i < 1024 && !failure; ++i) {
    failure = worker->write_line(line);
    if (!failure)
      accepted += line.size() + 1;
  }
  ASSERT_TRUE(failure.has_value()) << "1 MiB accepted by a worker that never reads";
  EXPECT_TRUE(contains(*failure, "not reading")) << *failure;
  EXPECT_GE(accepted, 4000u);
  EXPECT_LE(accepted, 1024u * 1024u);
  // Once failed, even a tiny line is refused.
  EXPECT_TRUE(worker->write_line("x").has_value());
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGTERM);
}

TEST_F(WorkerProcessTest, BacklogIsFlushedToASlowReader) {
  // More than the pipe holds, written at once: the rest must follow as the worker reads.
  auto [worker, recorder] = run("exec cat");
  constexpr int kLines = 300;
  for (int i = 0; i < kLines; ++i) {
    const std::string line = std::to_string(i) + ":" + std::string(1000, 'y');
    ASSERT_EQ(worker->write_line(line), std::nullopt) << "line " << i;
  }
  ASSERT_TRUE(recorder->wait_for_stdout_lines(kLines));
  const Lines lines = recorder->stdout_lines();
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kLines));
  for (int i = 0; i < kLines; ++i)
    EXPECT_EQ(lines[static_cast<std::size_t>(i)], std::to_string(i) + ":" + std::string(1000, 'y'));
  worker->terminate();
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
}

TEST_F(WorkerProcessTest, WriteLineIsThreadSafe) {
  auto [worker, recorder] = run("exec cat");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int n = 0; n < kPerThread; ++n) {
        if (worker->write_line("t" + std::to_string(t) + "-" + std::to_string(n)))
          ++failures;
      }
    });
  }
  for (auto& writer : writers)
    writer.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(recorder->wait_for_stdout_lines(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (const auto& line : recorder->stdout_lines()) {
    const auto dash = line.find('-');
    ASSERT_NE(dash, std::string::npos) << line;
    const int t = std::stoi(line.substr(1, dash - 1));
    ASSERT_TRUE(t >= 0 && t < kThreads) << line;
    EXPECT_EQ(line,
              "t" + std::to_string(t) + "-" + std::to_string(next[static_cast<std::size_t>(t)]));
    ++next[static_cast<std::size_t>(t)];
  }
  worker->terminate();
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
}

// --- terminate --------------------------------------------------------------------------------

TEST_F(WorkerProcessTest, TerminateStopsACooperativeWorkerWithSigterm) {
  WorkerOptions options;
  options.kill_grace = 10s;
  auto [worker, recorder] = run("echo ready\nexec sleep 1000", options);
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGTERM);  // SIGTERM sufficed: no SIGKILL after the 10 s grace
}

TEST_F(WorkerProcessTest, TerminateKillsAWorkerIgnoringSigtermAfterTheGrace) {
  WorkerOptions options;
  options.kill_grace = 200ms;
  // The ignored disposition survives exec, so sleep ignores SIGTERM too.
  auto [worker, recorder] = run("trap '' TERM\necho ready\nexec sleep 1000", options);
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  const auto started = Clock::now();
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  const auto elapsed = recorder->exited_at() - started;
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGKILL);
  EXPECT_GE(elapsed, options.kill_grace);  // not before the grace; how soon after is not judged
}

TEST_F(WorkerProcessTest, TerminateReachesTheWholeProcessGroup) {
  WorkerOptions options;
  options.kill_grace = 10s;
  auto [worker, recorder] = run("sleep 1000 &\necho \"child:$!\"\nwait", options);
  ASSERT_TRUE(recorder->wait_for_stdout_lines(1));
  const std::string line = recorder->stdout_lines()[0];
  ASSERT_EQ(line.rfind("child:", 0), 0u) << line;
  const pid_t child = std::stoi(line.substr(6));
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGTERM);
  // The background child got SIGTERM too: it is gone (or a zombie waiting for its new parent).
  const auto deadline = Clock::now() + kDeadline;
  bool gone = false;
  while (!gone && Clock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string content;
    std::getline(stat, content);
    const auto close_paren = content.rfind(')');
    gone = !stat || close_paren == std::string::npos || content.substr(close_paren + 2, 1) == "Z";
    if (!gone)
      std::this_thread::sleep_for(10ms);  // polling a process we cannot wait for
  }
  EXPECT_TRUE(gone) << "the worker's background child survived terminate()";
  if (!gone)
    ::kill(child, SIGKILL);
}

TEST_F(WorkerProcessTest, TerminateAfterExitAndTwiceIsHarmless) {
  auto [worker, recorder] = run("echo ready\nexec sleep 1000");
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  worker->terminate();
  worker->terminate();
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  worker->terminate();
  drain_io();
  EXPECT_EQ(recorder->exit_calls(), 1);
}

// --- reaping and descriptors ----------------------------------------------------------------

TEST_F(WorkerProcessTest, ExitedWorkerIsReaped) {
  auto [worker, recorder] = run("exit 0");
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(::waitpid(worker->pid(), nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(WorkerProcessTest, TerminatedWorkerIsReaped) {
  WorkerOptions options;
  options.kill_grace = 100ms;
  auto [worker, recorder] = run("trap '' TERM\necho ready\nexec sleep 1000", options);
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  worker->terminate();
  ASSERT_TRUE(recorder->wait_for_exit().has_value());
  EXPECT_EQ(::waitpid(worker->pid(), nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(WorkerProcessTest, NoDescriptorLeaksOverManyWorkers) {
  const std::size_t fds_before = open_fd_count();
  const std::string path = script("echo.sh", "read -r line\necho \"got:$line\"\necho err >&2");
  for (int i = 0; i < 20; ++i) {
    auto recorder = std::make_shared<Recorder>();
    auto worker = WorkerProcess::spawn(asio::make_strand(io_), WorkerCommand{path, {}, {}}, dir_,
                                       {}, as_asked({}), recorder);
    worker->start();
    EXPECT_EQ(worker->write_line("hi"), std::nullopt);
    ASSERT_TRUE(recorder->wait_for_exit().has_value()) << "cycle " << i;
    EXPECT_EQ(recorder->stdout_lines(), (Lines{"got:hi"}));
    std::weak_ptr<WorkerProcess> weak = worker;
    worker.reset();
    ASSERT_TRUE(wait_released(weak)) << "the worker is still held after its exit, cycle " << i;
  }
  // And one that was terminated, with output still pending in its stdin backlog.
  {
    auto recorder = std::make_shared<Recorder>();
    WorkerOptions options;
    options.kill_grace = 100ms;
    auto worker = WorkerProcess::spawn(
        asio::make_strand(io_),
        WorkerCommand{script("idle.sh", "echo ready\nexec sleep 1000"), {}, {}}, dir_, {},
        as_asked(options), recorder);
    worker->start();
    ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
    for (int i = 0; i < 100; ++i)
      worker->write_line(std::string(1000, 'z'));
    worker->terminate();
    ASSERT_TRUE(recorder->wait_for_exit().has_value());
    std::weak_ptr<WorkerProcess> weak = worker;
    worker.reset();
    ASSERT_TRUE(wait_released(weak));
  }
  EXPECT_EQ(open_fd_count(), fds_before);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

// --- containment: a worker under tau-worker-supervisor ----------------------------------------

using test::running_command;

// The daemons these tests start sleep this long: a number no other process here uses, so a reused
// pid is not mistaken for one of them.
constexpr std::string_view kDaemon = "sleep 613";

// Whether `pid` is one of the daemons, up and running in its own session (after setsid's exec);
// or, with `started` false, whether it is one at all, even before that.
bool runs_daemon(pid_t pid, bool started) {
  const std::string command = running_command(pid);
  return started ? command == kDaemon : contains(command, kDaemon);
}

// Waits until `pid` runs the daemon, started, or until it no longer runs it at all; the deadline
// only bounds a hang.
bool wait_for_daemon(pid_t pid, bool running) {
  const auto deadline = Clock::now() + kDeadline;
  while (runs_daemon(pid, running) != running) {
    if (Clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(10ms);  // polling a process we cannot wait for
  }
  return true;
}

// A worker script line that double-forks the daemon into a session of its own (its parent exits
// at once, so it is re-parented) and prints "daemon:<pid>".
const std::string kStartDaemon =
    "sh -c 'setsid " + std::string(kDaemon) + " </dev/null & echo \"daemon:$!\"'\n";

pid_t daemon_pid(const Lines& lines) {
  for (const auto& line : lines) {
    if (line.rfind("daemon:", 0) == 0)
      return std::stoi(line.substr(7));
  }
  ADD_FAILURE() << "the worker did not report its daemon";
  return -1;
}

class ContainmentTest : public WorkerProcessTest {
 protected:
  static WorkerOptions supervised(WorkerOptions options = {}) {
    options.supervisor_path = TAU_WORKER_SUPERVISOR_BINARY;
    return options;
  }

  // The daemon must be gone; if it is not, it is stopped here so that it does not outlive the test.
  static void expect_gone(pid_t daemon) {
    ASSERT_GT(daemon, 0);
    const bool gone = wait_for_daemon(daemon, false);
    EXPECT_TRUE(gone) << "the worker's daemon " << daemon << " survived";
    if (!gone)
      ::kill(daemon, SIGKILL);
  }
};

TEST_F(ContainmentTest, TerminateStopsADaemonInASessionOfItsOwn) {
  WorkerOptions options = supervised();
  options.kill_grace = 10s;
  auto [worker, recorder] = run(kStartDaemon + "echo ready\nexec sleep 1000", options);
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  const pid_t daemon = daemon_pid(recorder->stdout_lines());
  ASSERT_TRUE(wait_for_daemon(daemon, true));
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGTERM);  // the worker's own end, not the supervisor's
  expect_gone(daemon);
}

TEST_F(ContainmentTest, AWorkerIgnoringSigtermIsKilledWithItsTreeAfterTheGrace) {
  WorkerOptions options = supervised();
  options.kill_grace = 200ms;
  auto [worker, recorder] =
      run("trap '' TERM\n" + kStartDaemon + "echo ready\nexec sleep 1000", options);
  ASSERT_TRUE(recorder->wait_for_stdout_line("ready"));
  const pid_t daemon = daemon_pid(recorder->stdout_lines());
  ASSERT_TRUE(wait_for_daemon(daemon, true));
  const auto started = Clock::now();
  worker->terminate();
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->value, SIGKILL);
  EXPECT_GE(recorder->exited_at() - started, options.kill_grace);
  expect_gone(daemon);
}

TEST_F(ContainmentTest, ADaemonIsStoppedWhenTheWorkerExitsOnItsOwn) {
  auto [worker, recorder] = run(kStartDaemon + "exit 3", supervised());
  const auto status = recorder->wait_for_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->describe(), "exit code 3");
  expect_gone(daemon_pid(recorder->stdout_lines()));
}

TEST_F(ContainmentTest, DestroyingAWorkerThatWasNeverStartedStopsItsTree) {
  const std::string pid_file = dir_ + "/daemon.pid";
  auto worker = WorkerProcess::spawn(
      asio::make_strand(io_),
      WorkerCommand{script("tree.sh", "sh -c 'setsid " + std::string(kDaemon) +
                                          " </dev/null >/dev/null 2>&1 & echo $! >daemon.tmp'\n"
                                          "mv daemon.tmp daemon.pid\nexec sleep 1000"),
                    {},
                    {}},
      dir_, {}, supervised(), std::make_shared<Recorder>());
  const auto deadline = Clock::now() + kDeadline;
  while (!fs::exists(pid_file) && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);  // polling a file the worker writes
  std::ifstream in(pid_file);
  pid_t daemon = -1;
  ASSERT_TRUE(in >> daemon) << "the worker did not write its daemon's pid";
  ASSERT_TRUE(wait_for_daemon(daemon, true));
  const pid_t supervisor = worker->pid();
  worker.reset();
  EXPECT_EQ(running_command(supervisor), "");
  expect_gone(daemon);
}

TEST_F(ContainmentTest, TheExitStatusIsTheWorkersExactly) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"exit 0", "exit code 0"},
      {"echo bye\nexit 3", "exit code 3"},
      {"kill -9 $$", "killed by signal 9 (Killed)"},
      {"kill -TERM $$", "killed by signal 15 (Terminated)"},
      // The signal the supervisor itself obeys, when it is the worker's own end.
      {"kill -USR1 $$", "killed by signal 10 (User defined signal 1)"},
  };
  for (const auto& [body, expected] : cases) {
    auto [worker, recorder] = run(body, supervised());
    const auto status = recorder->wait_for_exit();
    ASSERT_TRUE(status.has_value()) << body;
    EXPECT_EQ(status->describe(), expected) << body;
  }
}

TEST_F(ContainmentTest, TheTreeIsStoppedWhenTheSupervisorsParentIsKilled) {
  // The gateway's part is played by a shell that runs the supervisor as its child; the test
  // kills that shell with SIGKILL, as a crash of the gateway would end.
  const std::string tree =
      script("tree.sh", "echo $$ >worker.pid\nsh -c 'setsid " + std::string(kDaemon) +
                            " </dev/null >/dev/null 2>&1 & echo $! >daemon.tmp'\n"
                            "mv daemon.tmp daemon.pid\nexec sleep 1000");
  const std::string parent =
      script("parent.sh", "\"$1\" --parent=$$ -- \"$2\" tree </dev/null\necho unreachable");
  std::vector<std::string> args{"sh", parent, TAU_WORKER_SUPERVISOR_BINARY, tree};
  std::vector<char*> argv;
  for (auto& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addchdir_np(&actions, dir_.c_str());
  // Not the test's own output: whatever might outlive the test must not hold it open.
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t shell = -1;
  const int spawned = ::posix_spawn(&shell, "/bin/sh", &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ASSERT_EQ(spawned, 0) << std::strerror(spawned);

  const auto deadline = Clock::now() + kDeadline;
  while (!fs::exists(dir_ + "/daemon.pid") && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);  // polling a file the worker writes
  pid_t daemon = -1;
  pid_t worker = -1;
  std::ifstream(dir_ + "/daemon.pid") >> daemon;
  std::ifstream(dir_ + "/worker.pid") >> worker;
  const bool started = daemon > 0 && worker > 0 && wait_for_daemon(daemon, true);
  ::kill(shell, SIGKILL);
  ASSERT_EQ(::waitpid(shell, nullptr, 0), shell);
  ASSERT_TRUE(started) << "the worker did not start its daemon";
  expect_gone(daemon);
  const auto until = Clock::now() + kDeadline;
  while (running_command(worker) == "sleep 1000" && Clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_NE(running_command(worker), "sleep 1000") << "the worker survived";
  if (running_command(worker) == "sleep 1000")
    ::kill(worker, SIGKILL);
}

TEST_F(ContainmentTest, ResourceLimitsAreSetBeforeTheWorkerStarts) {
  rlimit processes{};
  ASSERT_EQ(::getrlimit(RLIMIT_NPROC, &processes), 0);
  const std::uint64_t max_processes = std::min<std::uint64_t>(processes.rlim_max, 4000);
  for (bool with_supervisor : {false, true}) {
    WorkerOptions options = with_supervisor ? supervised() : WorkerOptions{};
    options.rlimits.address_space_bytes = 768ULL * 1024 * 1024;
    options.rlimits.open_files = 64;
    options.rlimits.processes = max_processes;
    // Soft and hard limit of each, in the order /proc lists them.
    auto [worker, recorder] =
        run("awk '/^Max processes/ {print $3, $4} /^Max open files/ {print $4, $5}"
            " /^Max address space/ {print $4, $5}' /proc/$$/limits",
            options);
    const auto status = recorder->wait_for_exit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    const std::string processes_limit = std::to_string(max_processes);
    EXPECT_EQ(recorder->stdout_lines(),
              (Lines{processes_limit + " " + processes_limit, "64 64", "805306368 805306368"}))
        << (with_supervisor ? "supervised" : "unsupervised");
  }
}

TEST_F(ContainmentTest, AMissingSupervisorIsASpawnError) {
  const std::size_t fds_before = open_fd_count();
  WorkerOptions options;
  options.supervisor_path = dir_ + "/no-such-supervisor";
  const WorkerCommand command{script("fine.sh", "echo hi"), {}, {}};
  try {
    WorkerProcess::spawn(asio::make_strand(io_), command, dir_, {}, options,
                         std::make_shared<Recorder>());
    ADD_FAILURE() << "spawn did not throw";
  } catch (const SpawnError& error) {
    EXPECT_TRUE(contains(error.what(), "'" + command.command + "'")) << error.what();
    EXPECT_TRUE(contains(error.what(), "no-such-supervisor")) << error.what();
    EXPECT_TRUE(contains(error.what(), "No such file or directory")) << error.what();
  }
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(open_fd_count(), fds_before);
}

TEST_F(ContainmentTest, DefaultSupervisorPathIsBesideTheRunningExecutable) {
  const fs::path self = fs::read_symlink("/proc/self/exe");
  EXPECT_EQ(default_supervisor_path(), (self.parent_path() / "tau-worker-supervisor").string());
}

}  // namespace
}  // namespace tau::worker
