// tau-worker-supervisor: one per worker, between the gateway and the worker, so that nothing the
// worker starts outlives its session or the gateway. See supervisor_protocol.h for how it is
// started and what it does; WorkerProcess (worker_process.cpp) is what starts it.
//
// It is its own small, single-threaded program (not code run in the gateway's forked child)
// because after a fork of the multithreaded gateway only async-signal-safe calls are allowed,
// while this needs to read /proc and wait for many children.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX names (sigaction, kill)
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>  // NOLINT(modernize-deprecated-headers): POSIX names (nanosleep)
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/supervisor_protocol.h"

// POSIX has the program declare it; glibc's <unistd.h> does too, but only under _GNU_SOURCE.
extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace {

using namespace tau::worker::supervisor;

struct Options {
  pid_t parent = 0;    // 0: no process whose exit stops everything
  int status_fd = -1;  // -1: no status pipe
  std::vector<std::pair<int, rlim_t>> limits;
  const char* executable = nullptr;
  char** argv = nullptr;  // the worker's, ending with nullptr
};

// Reports `error` on the status pipe, if there is one, and exits as a worker that could not start.
[[noreturn]] void fail(int status_fd, int error) {
  if (status_fd >= 0) {
    [[maybe_unused]] auto written = ::write(status_fd, &error, sizeof error);
  }
  ::_exit(127);
}

template <class Number>
bool parse_number(std::string_view text, Number& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// Parses one option into `options`; false when it is not one this program knows.
bool parse_option(std::string_view arg, Options& options) {
  const auto value_of = [&](std::string_view prefix, auto& value) {
    return arg.starts_with(prefix) && parse_number(arg.substr(prefix.size()), value);
  };
  std::uint64_t limit = 0;
  if (value_of(kParentOption, options.parent))
    return options.parent > 0;
  if (value_of(kStatusFdOption, options.status_fd))
    return options.status_fd >= 0;
  for (const auto& [prefix, resource] :
       {std::pair{kAddressSpaceOption, RLIMIT_AS}, std::pair{kOpenFilesOption, RLIMIT_NOFILE},
        std::pair{kProcessesOption, RLIMIT_NPROC}}) {
    if (value_of(prefix, limit)) {
      options.limits.emplace_back(resource, static_cast<rlim_t>(limit));
      return true;
    }
  }
  return false;
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  int next = 1;
  for (; next < argc && argv[next] != kEndOfOptions; ++next) {
    if (!parse_option(argv[next], options))
      return std::nullopt;
  }
  // "--", then the executable and at least the worker's argv[0].
  if (next + 2 >= argc)
    return std::nullopt;
  options.executable = argv[next + 1];
  options.argv = argv + next + 2;
  return options;
}

struct ProcessStat {
  pid_t pid = 0;
  pid_t parent = 0;
  pid_t group = 0;
};

// The parent and process group of `pid`, from /proc/<pid>/stat ("pid (comm) state ppid pgrp ...",
// where comm may hold anything, so the fields are read after its last ')').
std::optional<ProcessStat> read_stat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  char buffer[1024];
  const ssize_t size = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (size <= 0)
    return std::nullopt;
  buffer[size] = '\0';
  const char* close_paren = std::strrchr(buffer, ')');
  ProcessStat stat{pid, 0, 0};
  char state = 0;
  if (close_paren == nullptr ||
      std::sscanf(close_paren + 1, " %c %d %d", &state, &stat.parent, &stat.group) != 3) {
    return std::nullopt;
  }
  return stat;
}

// Every process whose parent is `parent`; nullopt when /proc cannot be read.
std::optional<std::vector<ProcessStat>> children_of(pid_t parent) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr)
    return std::nullopt;
  std::vector<ProcessStat> children;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    if (!parse_number(std::string_view(entry->d_name), pid))
      continue;
    if (auto stat = read_stat(pid); stat && stat->parent == parent)
      children.push_back(*stat);
  }
  ::closedir(proc);
  return children;
}

class Supervisor {
 public:
  explicit Supervisor(Options options) : options_(std::move(options)) {}

  [[noreturn]] void run() {
    set_up();
    start_worker();
    wait_until_done();
    stop_everything();
    exit_as_the_worker_did();
  }

 private:
  void set_up();
  void start_worker();
  [[noreturn]] void exec_worker(int go_fd);
  void wait_until_done();
  bool handle_signal(int signal_number);
  bool worker_has_exited();
  void stop_everything();
  void reaped(pid_t pid, int status);
  [[noreturn]] void exit_as_the_worker_did();

  const Options options_;
  const pid_t self_ = ::getpid();
  sigset_t handled_{};
  int signal_fd_ = -1;
  int parent_fd_ = -1;           // a pidfd of options_.parent
  int stdio_[3] = {-1, -1, -1};  // the worker's stdin, stdout and stderr (close-on-exec copies)
  pid_t worker_ = -1;            // also its process group
  std::optional<int> worker_status_;  // once reaped
};

void Supervisor::set_up() {
  const int status_fd = options_.status_fd;
  // Signals are taken from a signalfd only; blocked first, so none is missed.
  ::sigemptyset(&handled_);
  for (int signal_number : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, kKillSignal})
    ::sigaddset(&handled_, signal_number);
  ::pthread_sigmask(SIG_BLOCK, &handled_, nullptr);
  signal_fd_ = ::signalfd(-1, &handled_, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0)
    fail(status_fd, errno);
  if (options_.parent > 0) {
    parent_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, options_.parent, 0));
    if (parent_fd_ < 0)
      fail(status_fd, errno);
    // Still our parent, so the pidfd is of the right process and it has not exited yet.
    if (::getppid() != options_.parent)
      fail(status_fd, ESRCH);
  }
  // Orphans among the worker's descendants become this process's children.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    fail(status_fd, errno);
  if (status_fd >= 0)
    ::fcntl(status_fd, F_SETFD, FD_CLOEXEC);
  // The worker's stdin, stdout and stderr are kept only as close-on-exec copies for the worker:
  // this process must not hold them once the worker runs (the gateway sees the worker close its
  // stdin, and the end of its output, only when no one else holds them).
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0)
    fail(status_fd, errno);
  for (int fd = 0; fd < 3; ++fd) {
    stdio_[fd] = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    ::dup2(null_fd, fd);
  }
  ::close(null_fd);
}

void Supervisor::start_worker() {
  // The worker waits on `go` until this process has let go of what is the worker's alone.
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0)
    fail(options_.status_fd, errno);
  worker_ = ::fork();
  if (worker_ < 0)
    fail(options_.status_fd, errno);
  if (worker_ == 0) {
    ::close(go[1]);
    exec_worker(go[0]);
  }
  ::close(go[0]);
  ::setpgid(worker_, worker_);  // from both sides, so the group exists whichever runs first
  for (int& fd : stdio_) {
    if (fd >= 0)
      ::close(std::exchange(fd, -1));
  }
  // Now the status pipe closes when the worker is exec'd, or carries its errno.
  if (options_.status_fd >= 0)
    ::close(options_.status_fd);
  ::close(go[1]);
}

void Supervisor::exec_worker(int go_fd) {
  const int status_fd = options_.status_fd;
  char ignored;
  while (::read(go_fd, &ignored, 1) < 0 && errno == EINTR) {
  }
  ::setpgid(0, 0);
  // Should this supervisor die (a SIGKILL), the worker goes with it.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    fail(status_fd, errno);
  if (::getppid() != self_)
    fail(status_fd, ESRCH);
  for (int fd = 0; fd < 3; ++fd) {
    if (stdio_[fd] >= 0 && ::dup2(stdio_[fd], fd) < 0)
      fail(status_fd, errno);
  }
  for (const auto& [resource, value] : options_.limits) {
    const rlimit limit{value, value};
    if (::setrlimit(resource, &limit) != 0)
      fail(status_fd, errno);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  ::execve(options_.executable, options_.argv, environ);
  fail(status_fd, errno);
}

// Until the worker has exited (not yet reaped, so its process group cannot be reused), or the
// tree was told to stop, or the parent has gone.
void Supervisor::wait_until_done() {
  while (true) {
    pollfd watched[2] = {{signal_fd_, POLLIN, 0}, {parent_fd_, POLLIN, 0}};
    if (::poll(watched, parent_fd_ >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR)
        continue;
      return;  // cannot wait: stop everything rather than leave it unwatched
    }
    if (parent_fd_ >= 0 && watched[1].revents != 0)
      return;  // the gateway has exited
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      if (handle_signal(static_cast<int>(info.ssi_signo)))
        return;
    }
  }
}

// True when it is time to stop everything.
bool Supervisor::handle_signal(int signal_number) {
  if (signal_number == SIGCHLD)
    return worker_has_exited();
  if (signal_number == kKillSignal)
    return true;
  ::kill(-worker_, signal_number);  // a polite stop, passed on to the worker
  return false;
}

// Reaps children that have exited other than the worker, which is left a zombie (its pid, and so
// its process group, stays ours until stop_everything() has killed that group).
bool Supervisor::worker_has_exited() {
  while (true) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
      return false;
    if (info.si_pid == worker_)
      return true;
    int status = 0;
    if (::waitpid(info.si_pid, &status, 0) == info.si_pid)
      reaped(info.si_pid, status);
  }
}

// Kills the worker's process group, then, round after round, every child this process has (the
// orphans re-parented to it) and the groups they lead, reaping them, until none is left. A
// child's pid cannot be reused before it is reaped here, so what is killed is always ours.
void Supervisor::stop_everything() {
  if (!worker_status_)
    ::kill(-worker_, SIGKILL);
  while (true) {
    const auto children = children_of(self_);
    if (!children)
      break;  // no /proc: what is left cannot be found, only the worker's group was stopped
    for (const ProcessStat& child : *children) {
      ::kill(child.pid, SIGKILL);
      if (child.group == child.pid)
        ::kill(-child.pid, SIGKILL);  // a group it leads holds only its own descendants
    }
    int status = 0;
    // With children killed, wait for one of them; else see whether any is left at all.
    const pid_t pid = ::waitpid(-1, &status, children->empty() ? WNOHANG : 0);
    if (pid < 0 && errno == ECHILD)
      return;
    if (pid > 0)
      reaped(pid, status);
    else if (children->empty()) {
      const timespec pause{0, 1000000};  // a child that /proc did not list yet
      ::nanosleep(&pause, nullptr);
    }
  }
  int status = 0;
  for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;)
    reaped(pid, status);
  if (!worker_status_ && ::waitpid(worker_, &status, 0) == worker_)
    reaped(worker_, status);
}

void Supervisor::reaped(pid_t pid, int status) {
  if (pid == worker_)
    worker_status_ = status;
}

void Supervisor::exit_as_the_worker_did() {
  const int status = worker_status_.value_or(0);
  if (!worker_status_ || !WIFSIGNALED(status))
    ::_exit(worker_status_ && WIFEXITED(status) ? WEXITSTATUS(status) : 127);
  // Killed by a signal: the same signal, by default action, on this process. No core dump of
  // this process: the worker's own is the one that matters.
  const int signal_number = WTERMSIG(status);
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigaction(signal_number, &default_action, nullptr);
  sigset_t only;
  ::sigemptyset(&only);
  ::sigaddset(&only, signal_number);
  ::pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  ::kill(self_, signal_number);
  ::_exit(128 + signal_number);  // a signal whose default action does not end a process
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse_options(argc, argv);
  if (!options) {
    std::fprintf(stderr,
                 "usage: %s [--parent=PID] [--status-fd=FD] [--rlimit-as=BYTES] "
                 "[--rlimit-nofile=COUNT] [--rlimit-nproc=COUNT] -- EXECUTABLE ARGV0 [ARGS...]\n",
                 argc > 0 ? argv[0] : "tau-worker-supervisor");
    return 2;
  }
  Supervisor(*options).run();
}
