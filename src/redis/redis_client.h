#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

struct redisContext;
struct redisReader;

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
  // The socket, for a PipelinedConnection that takes the connection over once it is set up.
  int socket() const;

 private:
  redisContext* context_ = nullptr;
};

// One connection shared by every thread that calls Redis (auto-pipelining, as ioredis and
// Lettuce do it): a caller queues its command and waits for its own reply only; whatever is
// queued while a write is under way goes out in the next write, all in one; one reader thread
// hands each reply to the caller whose command it answers (Redis answers in order). When the
// connection breaks, or a reply is later than the command timeout, every command in flight fails
// with RedisUnavailable (nothing is known to have happened to them) and the connection stays
// broken. Thread-safe.
class PipelinedConnection : public std::enable_shared_from_this<PipelinedConnection> {
 public:
  // Connects, authenticates and selects the database (as RedisConnection); throws
  // RedisUnavailable.
  PipelinedConnection(const RedisAddress& address, std::chrono::milliseconds connect_timeout,
                      std::chrono::milliseconds command_timeout);
  // Fails what is still in flight and stops the reader.
  ~PipelinedConnection();
  PipelinedConnection(const PipelinedConnection&) = delete;
  PipelinedConnection& operator=(const PipelinedConnection&) = delete;

  // Sends a command and waits for its reply. An error reply is returned, not thrown; a broken
  // connection throws RedisUnavailable.
  Reply command(const std::vector<std::string>& arguments);

  // What a command submitted without waiting is answered with: its reply (an error reply too),
  // or a RedisUnavailable. Called exactly once, on the reader thread or the thread that found
  // the connection broken; it must return quickly and not throw.
  using Done = std::function<void(std::exception_ptr, Reply)>;
  // Queues a command and returns without waiting for its reply; the bytes go out before it
  // returns, or with the write under way. It never waits on the socket: when Redis takes no more
  // bytes (its input buffer and the socket's are full) the connection is failed instead. Safe on
  // an I/O thread.
  void submit(const std::vector<std::string>& arguments, Done done);
  // submit() in two steps: queue() the command; when it returns true nobody is writing, and the
  // caller must call flush() (then, or a moment later so that more commands go in one write).
  bool queue(const std::vector<std::string>& arguments, Done done);
  // Writes what is queued, never waiting on the socket (as submit). Only by whoever owns the
  // write: the caller whose queue() returned true (or whom it handed the write to).
  void flush() { write_queued(false); }
  bool broken() const;
  // Commands sent or queued whose replies have not come yet.
  std::size_t in_flight() const;
  // Writes made and commands sent so far: their ratio is the mean pipeline depth.
  std::uint64_t writes() const;
  std::uint64_t commands() const;

 private:
  struct Call {
    Done done;
    std::chrono::steady_clock::time_point queued_at;
  };

  // Queues the command; whether the caller is to write (no write is under way).
  bool enqueue(const std::vector<std::string>& arguments, Done done);
  // Sends what is queued, and what is queued meanwhile, until nothing is; one thread at a time.
  // `may_wait`: whether a send may wait for the socket (not on an I/O thread).
  void write_queued(bool may_wait);
  // The reader thread: parses replies (hiredis' reader) and hands each to its caller.
  void read_replies();
  void hand_over(Reply reply);
  // Marks the connection broken and fails every command in flight.
  void fail(const std::string& reason);
  bool reply_overdue();

  const std::chrono::milliseconds command_timeout_;
  const std::string description_;
  std::unique_ptr<RedisConnection> connection_;  // the socket's owner
  const int socket_;
  redisReader* reader_ = nullptr;  // the reader thread's only

  mutable std::mutex mutex_;
  std::string queued_;        // formatted commands not written yet
  std::deque<Call> waiting_;  // commands without a reply, oldest first (the order sent)
  bool writing_ = false;      // a caller is writing; others only queue
  bool broken_ = false;
  std::string broken_reason_;
  std::uint64_t writes_ = 0;
  std::uint64_t commands_ = 0;
  std::thread reader_thread_;
};

// The gateway's way to Redis: one PipelinedConnection, replaced when it breaks. While Redis is
// down, calls fail at once (RedisUnavailable) instead of each waiting for a connect timeout; a
// new connect is tried after a backoff that grows from 50 ms to 1 s.
class RedisClient {
 public:
  struct Options {
    std::chrono::milliseconds connect_timeout{500};
    std::chrono::milliseconds command_timeout{2000};
  };
  RedisClient(RedisAddress address, Options options);

  Reply command(const std::vector<std::string>& arguments);
  // Submits a command on the current connection without waiting (PipelinedConnection::submit);
  // false, with nothing sent, when there is no connection up (connecting waits, so the caller
  // makes the call with command() from a thread that may wait).
  bool try_submit(const std::vector<std::string>& arguments, PipelinedConnection::Done done);
  // Where the write of commands submitted by try_submit is made: `defer(write)` runs `write` a
  // moment later (e.g. posted to the I/O threads' executor, so that the commands of every
  // request handled before it go out in one write). Empty (the default): at once. Before the
  // executor stops running, set it back to empty and call flush().
  using WriteDeferrer = std::function<void(std::function<void()>)>;
  void set_write_deferrer(WriteDeferrer defer);
  // Writes what is queued on the current connection, taking over a write that was deferred:
  // only once a deferred write can no longer run (its executor stopped).
  void flush();
  // Whether the last attempt to reach Redis failed (until a later one succeeds).
  bool unavailable() const;
  const RedisAddress& address() const { return address_; }
  const Options& options() const { return options_; }
  // Commands waiting for their replies on the current connection.
  std::size_t in_flight() const;

 private:
  // The current connection; connects one (one caller at a time) when there is none.
  std::shared_ptr<PipelinedConnection> connection();
  // Starts the backoff, unless `broken` (null: a failed connect) is no longer the current one.
  void mark_failed(const PipelinedConnection* broken);

  const RedisAddress address_;
  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable connect_finished_;
  // Destroyed before the members above (a destroyed connection fails what is in flight, and
  // those callbacks reach mark_failed).
  std::shared_ptr<PipelinedConnection> connection_;
  bool connecting_ = false;
  bool unavailable_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
  WriteDeferrer defer_writes_;
};

}  // namespace tau::redis
