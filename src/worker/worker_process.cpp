#include "worker/worker_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX names (sigaction, kill)
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "worker/output_lines.h"
#include "worker/supervisor_protocol.h"

// POSIX has the program declare it; glibc's <unistd.h> does too, but only under _GNU_SOURCE.
extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace tau::worker {

namespace asio = boost::asio;
using asio::use_awaitable;

namespace {

// How long to keep reading output after the worker exited, in case a process it left behind
// still holds the pipes open.
constexpr std::chrono::milliseconds kOutputDrainAfterExit{1000};
// How long to wait before watching the pidfd again after it woke without an exit.
constexpr std::chrono::milliseconds kSpuriousWakePause{10};

std::string os_error(int error) {
  return std::generic_category().message(error);
}

// The executable for `command`: itself when it names a path, else the first executable match in
// the gateway's PATH (resolved here because the child may only make async-signal-safe calls).
std::string resolve_command(const std::string& command) {
  if (command.find('/') != std::string::npos)
    return command;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    if (dir.empty())
      dir = ".";
    std::string candidate = dir + "/" + command;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos)
      break;
    dirs.remove_prefix(colon + 1);
  }
  return command;  // not found: spawn() reports ENOENT
}

// Whether the worker must not see a variable of the gateway's environment.
bool withheld(std::string_view name, std::string_view value, const WorkerOptions& options) {
  if (name.starts_with("TAU_GATEWAY_"))
    return true;  // the gateway's own settings, its secrets among them
  if (options.clear_environment && name != "PATH" && name != "HOME" && name != "LANG")
    return true;
  return std::any_of(options.withheld_values.begin(), options.withheld_values.end(),
                     [&](const std::string& secret) { return !secret.empty() && secret == value; });
}

// The gateway's environment less what `options` withholds, with `overrides` replacing or adding
// variables, in order.
std::vector<std::string> child_environment(const EnvPairs& overrides,
                                           const WorkerOptions& options) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view variable(*entry);
    const auto equals = variable.find('=');
    const std::string_view key = variable.substr(0, equals);
    const std::string_view value =
        equals == std::string_view::npos ? std::string_view() : variable.substr(equals + 1);
    bool overridden = false;
    for (const auto& [name, ignored] : overrides)
      overridden = overridden || name == key;
    if (!overridden && !withheld(key, value, options))
      result.emplace_back(variable);
  }
  // A name given twice is set once, to its last value: with both in the environment, which one a
  // program sees depends on its shell or libc.
  for (std::size_t i = 0; i < overrides.size(); ++i) {
    bool set_again = false;
    for (std::size_t later = i + 1; later < overrides.size(); ++later)
      set_again = set_again || overrides[later].first == overrides[i].first;
    if (!set_again)
      result.push_back(overrides[i].first + "=" + overrides[i].second);
  }
  return result;
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (auto& s : strings)
    pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

void close_all(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0)
      ::close(fd);
  }
}

SpawnError spawn_error(const WorkerCommand& command, int error) {
  return SpawnError("cannot start worker '" + command.command + "': " + os_error(error));
}

using Limits = std::vector<std::pair<int, rlim_t>>;

// Everything the forked child needs, built before fork: after it, the child may only make
// async-signal-safe calls (the gateway is multithreaded), so it allocates nothing.
struct ExecPlan {
  std::string executable;  // an absolute path: the worker's, or its supervisor's
  std::vector<std::string> args;
  std::vector<std::string> environment;
  std::vector<char*> argv;  // pointers into `args`, ending with nullptr
  std::vector<char*> envp;  // pointers into `environment`, ending with nullptr
  std::string working_dir;
  pid_t parent = 0;  // the gateway, which the child checks is still there
  long max_fd = 0;
  bool supervised = false;  // the supervisor gets the status pipe and applies the limits
  Limits limits;            // for the child to apply, when it is the worker itself
};

// The executable `command` names, as an absolute path.
std::string worker_executable(const WorkerCommand& command) {
  const std::string executable = resolve_command(command.command);
  // Not found in PATH: execve would look for the bare name in the working directory.
  if (executable.find('/') == std::string::npos)
    throw spawn_error(command, ENOENT);
  // A relative path means relative to the gateway's directory, not the workspace it runs in.
  return std::filesystem::absolute(executable).string();
}

Limits limits_of(const ResourceLimits& rlimits) {
  Limits limits;
  if (rlimits.address_space_bytes)
    limits.emplace_back(RLIMIT_AS, static_cast<rlim_t>(*rlimits.address_space_bytes));
  if (rlimits.open_files)
    limits.emplace_back(RLIMIT_NOFILE, static_cast<rlim_t>(*rlimits.open_files));
  if (rlimits.processes)
    limits.emplace_back(RLIMIT_NPROC, static_cast<rlim_t>(*rlimits.processes));
  return limits;
}

// Turns `plan` for the worker into one for its supervisor, which runs the worker in turn.
void run_under_supervisor(ExecPlan& plan, const WorkerCommand& command,
                          const WorkerOptions& options) {
  namespace protocol = supervisor;
  const std::string path = std::filesystem::absolute(options.supervisor_path).string();
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || ::access(path.c_str(), X_OK) != 0) {
    throw SpawnError("cannot start worker '" + command.command + "': its supervisor " + path +
                     ": " + os_error(errno));
  }
  std::vector<std::string> args{
      std::string(protocol::kExecutableName),
      std::string(protocol::kParentOption) + std::to_string(plan.parent),
      std::string(protocol::kStatusFdOption) + std::to_string(protocol::kStatusFd)};
  const ResourceLimits& rlimits = options.rlimits;
  for (const auto& [option, limit] :
       {std::pair{protocol::kAddressSpaceOption, rlimits.address_space_bytes},
        std::pair{protocol::kOpenFilesOption, rlimits.open_files},
        std::pair{protocol::kProcessesOption, rlimits.processes}}) {
    if (limit)
      args.push_back(std::string(option) + std::to_string(*limit));
  }
  args.emplace_back(protocol::kEndOfOptions);
  args.push_back(std::move(plan.executable));
  args.insert(args.end(), std::make_move_iterator(plan.args.begin()),
              std::make_move_iterator(plan.args.end()));
  plan.executable = path;
  plan.args = std::move(args);
  plan.supervised = true;
  plan.limits.clear();
}

ExecPlan prepare(const WorkerCommand& command, const std::string& working_dir,
                 const EnvPairs& extra_env, const WorkerOptions& options) {
  ExecPlan plan;
  plan.executable = worker_executable(command);
  plan.args = {command.command};
  plan.args.insert(plan.args.end(), command.args.begin(), command.args.end());
  plan.parent = ::getpid();
  plan.limits = limits_of(options.rlimits);
  if (!options.supervisor_path.empty())
    run_under_supervisor(plan, command, options);
  EnvPairs overrides = command.env;
  overrides.insert(overrides.end(), extra_env.begin(), extra_env.end());
  plan.environment = child_environment(overrides, options);
  plan.argv = pointers_to(plan.args);
  plan.envp = pointers_to(plan.environment);
  plan.working_dir = working_dir;
  plan.max_fd = ::sysconf(_SC_OPEN_MAX);
  return plan;
}

// The worker's stdin, stdout and stderr, and the status pipe that carries the child's errno when
// it cannot exec (and closes, by close-on-exec, when it can). [0] reads, [1] writes.
struct SpawnPipes {
  int in[2] = {-1, -1};
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int status[2] = {-1, -1};

  // The ends the child uses; the parent closes them once the child has them.
  void close_child_ends() { close_all({in[0], out[1], err[1], status[1]}); }
  // The ends the worker's I/O goes through, kept by the parent.
  void close_parent_ends() { close_all({in[1], out[0], err[0]}); }
  void close_all_ends() {
    close_child_ends();
    close_parent_ends();
    close_all({status[0]});
  }
};

SpawnPipes open_pipes(const WorkerCommand& command) {
  SpawnPipes pipes;
  if (::pipe2(pipes.in, O_CLOEXEC) != 0 || ::pipe2(pipes.out, O_CLOEXEC) != 0 ||
      ::pipe2(pipes.err, O_CLOEXEC) != 0 || ::pipe2(pipes.status, O_CLOEXEC) != 0) {
    const int error = errno;
    pipes.close_all_ends();
    throw spawn_error(command, error);
  }
  return pipes;
}

// In the forked child: report errno to the parent through the status pipe and give up.
[[noreturn]] void fail_in_child(int status_fd) {
  const int error = errno;
  [[maybe_unused]] auto written = ::write(status_fd, &error, sizeof error);
  ::_exit(127);
}

// The forked child's side: its own process group, the pipes as stdin, stdout and stderr, nothing
// else inherited, then exec. Only async-signal-safe calls: the gateway has other threads, whose
// locks (malloc's among them) may be held forever in this copy of it.
[[noreturn]] void exec_in_child(const ExecPlan& plan, const SpawnPipes& pipes) {
  int status_fd = pipes.status[1];
  ::setpgid(0, 0);
  // Die with the gateway. A supervisor watches the gateway itself instead: it must outlive it
  // long enough to stop the worker's tree.
  if (!plan.supervised && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    fail_in_child(status_fd);
  // If the gateway is already gone, do not start at all.
  if (::getppid() != plan.parent) {
    errno = ESRCH;
    fail_in_child(status_fd);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &default_action, nullptr);  // the gateway ignores it; a worker should not
  if (::dup2(pipes.in[0], STDIN_FILENO) < 0 || ::dup2(pipes.out[1], STDOUT_FILENO) < 0 ||
      ::dup2(pipes.err[1], STDERR_FILENO) < 0) {
    fail_in_child(status_fd);
  }
  // Only stdin, stdout and stderr are the worker's: what else the gateway holds without
  // close-on-exec (Asio opens its sockets that way) must not leak into it.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (long fd = 3; fd < plan.max_fd; ++fd)
      ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
  // The supervisor reports on the status pipe whether the worker could be started.
  if (plan.supervised) {
    if (status_fd != supervisor::kStatusFd &&
        ::dup2(status_fd, supervisor::kStatusFd) != supervisor::kStatusFd) {
      fail_in_child(status_fd);
    }
    status_fd = supervisor::kStatusFd;
    ::fcntl(status_fd, F_SETFD, 0);
  }
  for (const auto& [resource, value] : plan.limits) {
    const rlimit limit{value, value};
    if (::setrlimit(resource, &limit) != 0)
      fail_in_child(status_fd);
  }
  // The working directory's last component is not followed: a workspace replaced by a symlink
  // (by an agent, say) must not move its next worker out of the workspace root. (The descriptor
  // is close-on-exec.)
  const int working_dir_fd =
      ::open(plan.working_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (working_dir_fd < 0 || ::fchdir(working_dir_fd) != 0)
    fail_in_child(status_fd);
  ::execve(plan.executable.c_str(), plan.argv.data(), plan.envp.data());
  fail_in_child(status_fd);
}

// The parent's side once the child is forked: waits for its exec (or its errno), makes sure of
// its process group, and opens the pidfd its exit is watched through. Returns the pidfd; throws,
// leaving no process and no descriptor behind, when the child could not start.
int watch_child(pid_t pid, SpawnPipes& pipes, const WorkerCommand& command, bool supervised) {
  pipes.close_child_ends();
  // The status pipe closes on a successful exec (CLOEXEC) or carries the child's errno.
  int child_error = 0;
  ssize_t got;
  do {
    got = ::read(pipes.status[0], &child_error, sizeof child_error);
  } while (got < 0 && errno == EINTR);
  ::close(pipes.status[0]);
  if (got == static_cast<ssize_t>(sizeof child_error)) {
    ::waitpid(pid, nullptr, 0);
    pipes.close_parent_ends();
    throw spawn_error(command, child_error);
  }
  ::setpgid(pid, pid);  // also from this side, so the group exists whichever runs first
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int error = errno;
    ::kill(supervised ? pid : -pid, supervised ? supervisor::kKillSignal : SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pipes.close_parent_ends();
    throw SpawnError("cannot supervise worker '" + command.command + "': " + os_error(error));
  }
  for (int fd : {pipes.in[1], pipes.out[0], pipes.err[0]})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return pidfd;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (!signaled)
    return "exit code " + std::to_string(value);
  const char* name = ::sigdescr_np(value);  // strsignal, without its shared buffer
  return "killed by signal " + std::to_string(value) + (name ? std::string(" (") + name + ")" : "");
}

std::shared_ptr<WorkerProcess> WorkerProcess::spawn(
    asio::any_io_executor strand, const WorkerCommand& command, const std::string& working_dir,
    const EnvPairs& extra_env, WorkerOptions options, std::shared_ptr<WorkerListener> listener) {
  const ExecPlan plan = prepare(command, working_dir, extra_env, options);
  SpawnPipes pipes = open_pipes(command);
  const pid_t pid = ::fork();
  if (pid == 0)
    exec_in_child(plan, pipes);
  if (pid < 0) {
    const int error = errno;
    pipes.close_all_ends();
    throw spawn_error(command, error);
  }
  const int pidfd = watch_child(pid, pipes, command, plan.supervised);
  return std::make_shared<WorkerProcess>(std::move(strand), pid, pidfd, pipes.in[1], pipes.out[0],
                                         pipes.err[0], std::move(options), std::move(listener));
}

WorkerProcess::WorkerProcess(asio::any_io_executor strand, pid_t pid, int pidfd, int stdin_fd,
                             int stdout_fd, int stderr_fd, WorkerOptions options,
                             std::shared_ptr<WorkerListener> listener)
    : strand_(std::move(strand)),
      pid_(pid),
      options_(std::move(options)),
      listener_(std::move(listener)),
      pidfd_(strand_, pidfd),
      stdout_(strand_, stdout_fd),
      stderr_(strand_, stderr_fd),
      kill_timer_(strand_),
      output_closed_(strand_),
      stdin_(strand_, stdin_fd) {}

WorkerProcess::~WorkerProcess() {
  // Nothing else holds this worker, so reaped_ is read safely here.
  if (reaped_)
    return;
  signal_kill();
  ::waitpid(pid_, nullptr, 0);
}

std::string default_supervisor_path() {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error)
    return {};
  return (self.parent_path() / supervisor::kExecutableName).string();
}

void WorkerProcess::start() {
  // Each coroutine holds the worker alive until it finishes.
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self] { return self->read_output(self->stdout_, OutputStream::stdout_stream); },
      asio::detached);
  asio::co_spawn(
      strand_, [self] { return self->read_output(self->stderr_, OutputStream::stderr_stream); },
      asio::detached);
  asio::co_spawn(
      strand_, [self] { return self->wait_for_exit(); }, asio::detached);
}

asio::awaitable<void> WorkerProcess::read_output(asio::posix::stream_descriptor& pipe,
                                                 OutputStream stream) {
  // Lines are reported only until the exit is: nothing may follow the exit event.
  LineSplitter::Dropped dropped;
  if (options_.drop_long_lines) {
    dropped = [this, stream](std::size_t line_bytes) {
      if (!exited_)
        listener_->on_dropped_line(stream, line_bytes);
    };
  }
  LineSplitter lines(
      options_.max_line_bytes,
      [this, stream](std::string line) {
        if (!exited_)
          listener_->on_output(stream, std::move(line));
      },
      std::move(dropped));
  std::array<char, 65536> buffer;
  while (true) {
    auto [error, read] =
        co_await pipe.async_read_some(asio::buffer(buffer), asio::as_tuple(use_awaitable));
    if (read > 0) {
      lines.feed(std::string_view(buffer.data(), read));
      last_output_ = std::chrono::steady_clock::now();
    }
    if (error)
      break;
  }
  lines.finish();
  --open_outputs_;
  output_closed_.cancel();
}

asio::awaitable<void> WorkerProcess::wait_for_exit() {
  // The pidfd turns readable when the child exits. The reap never blocks (WNOHANG): a wake-up
  // without an exit, seen under heavy load, must not stall an I/O thread in waitid, so it is
  // retried after a short pause instead.
  siginfo_t info{};
  asio::steady_timer pause(strand_);
  while (true) {
    co_await pidfd_.async_wait(asio::posix::stream_descriptor::wait_read,
                               asio::as_tuple(use_awaitable));
    info = {};
    int reaped;
    do {
      reaped = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG);
    } while (reaped != 0 && errno == EINTR);
    if (reaped != 0 || info.si_pid == pid_)
      break;  // exited (or, impossibly, not our child)
    pause.expires_after(kSpuriousWakePause);
    co_await pause.async_wait(asio::as_tuple(use_awaitable));
  }
  ExitStatus status;
  status.signaled = info.si_code != CLD_EXITED;
  status.value = info.si_status;
  reaped_ = true;
  kill_timer_.cancel();

  // Output written just before the exit may still be in the pipes: read it to the end first.
  // Give up only once the pipes stay open but silent for the drain time (a process the worker
  // left behind holds them); while output keeps coming, however slowly it is handled, wait.
  output_closed_.expires_after(kOutputDrainAfterExit);
  while (open_outputs_ > 0) {
    auto [timer_error] = co_await output_closed_.async_wait(asio::as_tuple(use_awaitable));
    if (timer_error)
      continue;  // a pipe reached its end
    const auto silent_until = last_output_ + kOutputDrainAfterExit;
    if (std::chrono::steady_clock::now() >= silent_until)
      break;
    output_closed_.expires_at(silent_until);
  }
  exited_ = true;
  boost::system::error_code ignored;
  stdout_.close(ignored);
  stderr_.close(ignored);
  pidfd_.close(ignored);
  {
    std::lock_guard lock(stdin_mutex_);
    fail_stdin_locked("the worker has exited (" + status.describe() + ")");
    stdin_.close(ignored);
  }
  listener_->on_exit(status);
}

void WorkerProcess::terminate() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->reaped_ || self->terminating_)
      return;
    self->terminating_ = true;
    self->signal_stop();
    self->kill_timer_.expires_after(self->options_.kill_grace);
    self->kill_timer_.async_wait([self](const boost::system::error_code& error) {
      if (error || self->reaped_)
        return;
      self->signal_kill();
      if (!self->supervised())
        return;
      // A supervisor stops the tree at once; should it not (stopped, or stuck), it goes itself.
      self->kill_timer_.expires_after(self->options_.kill_grace);
      self->kill_timer_.async_wait([self](const boost::system::error_code& again) {
        if (!again && !self->reaped_)
          ::kill(-self->pid_, SIGKILL);
      });
    });
  });
}

// Signals go to the worker's process group, or only to the supervisor, which handles the tree.
// Only while the process is not reaped: until then its pid cannot be reused.
void WorkerProcess::signal_stop() {
  if (supervised())
    ::kill(pid_, SIGTERM);
  else
    ::kill(-pid_, SIGTERM);
}

void WorkerProcess::signal_kill() {
  if (supervised()) {
    ::kill(pid_, supervisor::kKillSignal);
    ::kill(pid_, SIGCONT);  // a stopped supervisor could not act on it
  } else {
    ::kill(-pid_, SIGKILL);
  }
}

std::optional<std::string> WorkerProcess::write_line(std::string_view line) {
  std::lock_guard lock(stdin_mutex_);
  if (stdin_failure_)
    return stdin_failure_;
  if (stdin_backlog_.size() + line.size() + 1 > options_.max_stdin_backlog_bytes) {
    fail_stdin_locked("the worker is not reading its stdin (" +
                      std::to_string(stdin_backlog_.size()) + " bytes are waiting)");
    return stdin_failure_;
  }
  stdin_backlog_.append(line);
  stdin_backlog_.push_back('\n');
  if (!write_pending_locked())
    return stdin_failure_;
  if (!stdin_backlog_.empty() && !stdin_flush_scheduled_) {
    stdin_flush_scheduled_ = true;
    auto self = shared_from_this();
    asio::co_spawn(
        strand_, [self] { return self->flush_stdin(); }, asio::detached);
  }
  return std::nullopt;
}

bool WorkerProcess::write_pending_locked() {
  while (!stdin_backlog_.empty()) {
    const ssize_t written =
        ::write(stdin_.native_handle(), stdin_backlog_.data(), stdin_backlog_.size());
    if (written > 0) {
      stdin_backlog_.erase(0, static_cast<std::size_t>(written));
    } else if (written < 0 && errno == EINTR) {
      continue;
    } else if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;  // the pipe is full: the rest waits for the worker to read
    } else {
      fail_stdin_locked("writing to the worker's stdin failed: " + os_error(errno));
      return false;
    }
  }
  return true;
}

asio::awaitable<void> WorkerProcess::flush_stdin() {
  while (true) {
    auto [error] = co_await stdin_.async_wait(asio::posix::stream_descriptor::wait_write,
                                              asio::as_tuple(use_awaitable));
    std::lock_guard lock(stdin_mutex_);
    if (error || stdin_failure_ || !write_pending_locked() || stdin_backlog_.empty()) {
      stdin_flush_scheduled_ = false;
      co_return;
    }
  }
}

void WorkerProcess::fail_stdin_locked(std::string reason) {
  if (!stdin_failure_)
    stdin_failure_ = std::move(reason);
  stdin_backlog_.clear();
}

}  // namespace tau::worker
