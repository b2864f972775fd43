#pragma once

#include <spdlog/common.h>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace spdlog::details {
class thread_pool;
}  // namespace spdlog::details

namespace tau::gateway {

enum class LogFormat { json, text };
std::optional<LogFormat> log_format_from_string(std::string_view text);

// Routes the default logger and the access log to stderr, one line per record: a JSON object
// per line, or text for people. Writing is asynchronous (one logging thread), so an I/O thread
// never waits on a slow stderr reader; when the queue is full the oldest lines are dropped.
// Keep the returned guard alive while the gateway runs: it drains the queue when it goes.
class LoggingGuard {
 public:
  LoggingGuard(LogFormat format, spdlog::level::level_enum level);
  ~LoggingGuard();
  LoggingGuard(const LoggingGuard&) = delete;
  LoggingGuard& operator=(const LoggingGuard&) = delete;

 private:
  // Owned here, not by spdlog's registry, so that it is drained and its thread joined before
  // the loggers and their sinks are destroyed.
  std::shared_ptr<spdlog::details::thread_pool> thread_pool_;
};

// One answered (or abandoned) request, for the access log.
struct AccessRecord {
  std::string_view method;
  std::string_view route;  // the route template, never the raw path
  unsigned status = 0;     // 0: the client left before an answer
  double duration_ms = 0;
  std::uint64_t bytes = 0;     // response body bytes written
  std::string_view principal;  // the principal kind ("token", "session", ...) or "anonymous"
};

// Logs one access-log line at info level (`--log-level warn` and above silence it). Lines are
// handed to the logging thread in batches: the first line of a batch posts its hand-over to
// `executor`, and every line of a request that ends before the hand-over runs joins it. Under
// load the logging thread then wakes and writes once per burst of requests instead of once per
// request (measured: that wake-up and write cost a third of the read path's throughput on one
// core); when idle a line still goes out at once.
void log_access(const AccessRecord& record, const boost::asio::any_io_executor& executor);

}  // namespace tau::gateway
