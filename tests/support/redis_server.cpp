#include "support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace tau::test {

namespace {

constexpr const char* kRedisServer = "/usr/bin/redis-server";
constexpr const char* kRedisCli = "/usr/bin/redis-cli";
constexpr auto kStartDeadline = std::chrono::seconds(20);
constexpr auto kStopDeadline = std::chrono::seconds(20);
constexpr auto kPollInterval = std::chrono::milliseconds(5);
constexpr int kPortAttempts = 5;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// A socket descriptor closed when this goes out of scope.
struct Socket {
  int fd;
  explicit Socket(int descriptor) : fd(descriptor) {}
  ~Socket() {
    if (fd >= 0)
      ::close(fd);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
};

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

std::uint16_t free_loopback_port() {
  Socket socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (socket.fd < 0)
    throw std::runtime_error("socket failed");
  sockaddr_in address = loopback(0);
  socklen_t length = sizeof address;
  if (::bind(socket.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(socket.fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("could not bind a loopback port");
  }
  return ntohs(address.sin_port);
}

RedisServer::RedisServer() {
  start();
}

RedisServer::~RedisServer() {
  stop();
}

std::string RedisServer::url() const {
  return "redis://127.0.0.1:" + std::to_string(port_);
}

void RedisServer::start() {
  if (running())
    throw std::logic_error("redis-server is already running");
  if (port_ == 0) {
    // A port picked this way can be taken again before redis binds it: pick another then.
    for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
      port_ = free_loopback_port();
      if (try_start())
        return;
    }
    throw std::runtime_error("redis-server could not bind a free port; its log:\n" + log());
  }
  // A restart keeps its port: retry while the port is still held (connections being torn down).
  const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
  while (!try_start()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_) +
                               "; its log:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool RedisServer::try_start() {
  // setpriv --pdeathsig: the server dies with the test instead of outliving it (it then execs
  // redis-server, so pid_ is the server's own pid).
  std::vector<std::string> argv = {"/usr/bin/setpriv",
                                   "--pdeathsig",
                                   "KILL",
                                   kRedisServer,
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--protected-mode",
                                   "no",
                                   "--dir",
                                   dir_.path(),
                                   "--logfile",
                                   dir_.path() + "/redis.log",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "yes",
                                   "--appendfsync",
                                   "always",
                                   "--daemonize",
                                   "no"};
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_ = spawn_process(argv, {}, null_fd, -1);
  if (null_fd >= 0)
    ::close(null_fd);

  const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;  // exited before answering: most likely the port was taken
      return false;
    }
    if (ping())
      return true;
    std::this_thread::sleep_for(kPollInterval);
  }
  kill();
  throw std::runtime_error("redis-server did not answer PING on port " + std::to_string(port_) +
                           "; its log:\n" + log());
}

int RedisServer::wait_for_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return exit_code_of(status);
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return -1;
    std::this_thread::sleep_for(kPollInterval);
  }
}

int RedisServer::stop() {
  if (!running())
    return -1;
  ::kill(pid_, SIGTERM);
  const int code =
      wait_for_exit(std::chrono::duration_cast<std::chrono::milliseconds>(kStopDeadline));
  if (code >= 0)
    return code;
  ADD_FAILURE() << "redis-server did not exit on SIGTERM; killing it. Its log:\n" << log();
  return kill();
}

int RedisServer::kill() {
  if (!running())
    return -1;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return exit_code_of(status);
}

bool RedisServer::ping() const {
  Socket socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (socket.fd < 0)
    return false;
  timeval timeout{.tv_sec = 1, .tv_usec = 0};
  ::setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(socket.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  const sockaddr_in address = loopback(port_);
  if (::connect(socket.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return false;
  static constexpr char kPing[] = "PING\r\n";
  if (::send(socket.fd, kPing, sizeof kPing - 1, MSG_NOSIGNAL) != sizeof kPing - 1)
    return false;
  // "+PONG\r\n" once the data is loaded; "-LOADING ..." before.
  std::string reply;
  char buffer[256];
  while (reply.find("\r\n") == std::string::npos) {
    const ssize_t got = ::recv(socket.fd, buffer, sizeof buffer, 0);
    if (got <= 0)
      return false;
    reply.append(buffer, static_cast<std::size_t>(got));
  }
  return reply.starts_with("+PONG\r\n");
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {kRedisCli, "-h", "127.0.0.1", "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  const ExitResult result = run_to_exit(argv);
  EXPECT_EQ(result.exit_code, 0) << "redis-cli failed: " << result.stderr_text;
  std::string output = result.stdout_text;
  if (!output.empty() && output.back() == '\n')
    output.pop_back();
  return output;
}

std::string RedisServer::log() const {
  std::ifstream in(dir_.path() + "/redis.log");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace tau::test
