#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

struct redisContext;

namespace tau::redis {

// Where the shared store lives: `redis://[:password@]HOST:PORT[/DB]`.
struct RedisAddress {
  std::string host;
  std::uint16_t port = 6379;
  std::string password;  // empty: no AUTH
  int database = 0;

  // The URL without its password, for logs and status.
  std::string describe() const;
};

// Parses a `redis://` URL (Boost.URL); returns a one-line reason when it is not one.
std::variant<RedisAddress, std::string> parse_redis_url(std::string_view url);

// One RESP2 reply, copied out of hiredis.
struct Reply {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string text;  // string, status and error replies
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::error; }
};

// Redis could not be reached, or the connection broke mid-command: nothing is known to have
// happened, so the caller must not acknowledge anything.
class RedisUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One blocking hiredis connection. Not thread-safe: one caller at a time.
class RedisConnection {
 public:
  // Connects, authenticates and selects the database; throws RedisUnavailable. `timeout` bounds
  // the connect and, when `command_timeout` is set, every later command's wait for its reply.
  RedisConnection(const RedisAddress& address, std::chrono::milliseconds connect_timeout,
                  std::optional<std::chrono::milliseconds> command_timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends a command and waits for its reply. An error reply is returned, not thrown; a broken
  // connection throws RedisUnavailable and leaves this connection unusable.
  Reply command(const std::vector<std::string>& arguments);
  // Waits for the next message pushed to a subscribed connection.
  Reply next_reply();
  // Wakes a thread blocked in `next_reply` from another thread (it then throws).
  void shut_down();

 private:
  redisContext* context_ = nullptr;
};

// A small pool of connections shared by the threads that call Redis. When Redis is down, calls
// fail at once (RedisUnavailable) instead of each waiting for a connect timeout; a new connect
// is tried after a backoff that grows from 50 ms to 1 s.
class RedisClient {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{500};
    std::chrono::milliseconds command_timeout{2000};
    std::size_t max_connections = 8;
  };
  RedisClient(RedisAddress address, Options options);

  Reply command(const std::vector<std::string>& arguments);
  // Whether the last attempt to reach Redis failed (until a later one succeeds).
  bool unavailable() const;
  const RedisAddress& address() const { return address_; }
  const Options& options() const { return options_; }

 private:
  std::unique_ptr<RedisConnection> acquire();
  void release(std::unique_ptr<RedisConnection> connection);
  void mark_failed();

  const RedisAddress address_;
  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable connection_released_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;
  std::size_t open_connections_ = 0;  // idle or in use
  bool unavailable_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
};

}  // namespace tau::redis
