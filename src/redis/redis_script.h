#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/session_types.h"
#include "redis/redis_client.h"

namespace tau::redis {

// What every call that cannot reach Redis throws: core::Error(store_unavailable).
core::Error store_unavailable_error();

// The gateway's shared rules as one Lua script (src/redis/gateway.lua), run by EVALSHA. Every
// operation is one atomic step in Redis, whichever gateway calls it. Thread-safe.
class RedisScript {
 public:
  // Loads the script; throws RedisUnavailable when Redis cannot be reached.
  explicit RedisScript(std::shared_ptr<RedisClient> client);

  // Runs `operation` with the key prefix, the time and its arguments. Returns the reply (an
  // array). Throws core::Error(store_unavailable) when Redis cannot be reached or
  // cannot serve now (loading, out of memory, a read-only replica), and std::runtime_error
  // when the script itself fails.
  Reply run(std::string_view operation, std::string_view prefix, std::int64_t now_unix_ms,
            std::vector<std::string> arguments);
  // The same without waiting: `done` gets the reply, or what run() would throw as an
  // exception_ptr, once, on a thread of the client (see PipelinedConnection::submit). False,
  // with nothing sent and `done` not called, when no connection to Redis is up: run() connects.
  using Done = std::function<void(std::exception_ptr, Reply)>;
  bool try_run_async(std::string_view operation, std::string_view prefix, std::int64_t now_unix_ms,
                     std::vector<std::string> arguments, Done done);

  RedisClient& client() { return *client_; }

 private:
  std::string load();
  std::vector<std::string> command_of(std::string_view operation, std::string_view prefix,
                                      std::int64_t now_unix_ms, std::vector<std::string> arguments);

  const std::shared_ptr<RedisClient> client_;
  std::mutex mutex_;  // guards sha_, reloaded after a Redis restart
  std::string sha_;
};

// Reading the script's replies (arrays whose first element is "ok"). Each throws
// std::runtime_error when the reply is not shaped as the script answers.
const Reply& element(const Reply& reply, std::size_t index);
std::int64_t integer_of(const Reply& reply);  // nil reads as 0
// A snapshot, laid out as feed_message.h's snapshot_field says.
core::SessionSnapshot snapshot_of(const Reply& reply);
// An event of a replay, laid out as feed_message.h's event_field says.
core::SessionEvent event_of(const Reply& reply);

}  // namespace tau::redis
