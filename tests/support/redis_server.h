#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "support/gateway_process.h"

namespace tau::test {

// A loopback port nothing listened on a moment ago (bound as port 0, then closed). Someone else
// may take it before the caller binds it, so callers retry with another one when binding fails.
std::uint16_t free_loopback_port();

// Debian's /usr/bin/redis-server as a child process on a free loopback port (127.0.0.1 only),
// with its own directory: no RDB snapshots, an append-only file fsynced at every write (so a
// restart keeps everything it acknowledged), protected mode off. The constructor starts it; the
// destructor stops it and removes the directory. The child gets SIGKILL if the thread that
// started it dies, so a test killed by its timeout leaves no server behind.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  // "redis://127.0.0.1:PORT", for --store.
  std::string url() const;
  // Its working directory (the append-only file and redis.log live here).
  const std::string& dir() const { return dir_.path(); }
  bool running() const { return pid_ > 0; }

  // Starts the server and returns once it answers PING with PONG (it has loaded its data). The
  // first start picks a free port, trying another when the server cannot bind it; later starts
  // reuse the port and the directory. Throws, with the server's log, when it does not come up.
  void start();
  // SIGTERM (the server syncs its append-only file and exits) and waits; SIGKILL if it is not
  // gone within a deadline. Returns its exit code (128+signal when killed); -1 if not running.
  int stop();
  // SIGKILL, as a crash would, and waits. Returns 128+SIGKILL; -1 if not running.
  int kill();

  // Whether it answers PING with +PONG right now (a raw RESP exchange on a fresh connection).
  bool ping() const;
  // Runs /usr/bin/redis-cli against it with `args` (e.g. {"GET", "key"}) and returns its
  // standard output without the trailing newline. Fails the test when redis-cli fails.
  std::string cli(const std::vector<std::string>& args) const;
  // What the server wrote to its log so far.
  std::string log() const;

 private:
  // Spawns the server on port_; true once it answers PING, false when it exited first (e.g. the
  // port was taken). Throws when it neither answers nor exits within the deadline.
  bool try_start();
  int wait_for_exit(std::chrono::milliseconds timeout);

  TempDir dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tau::test
