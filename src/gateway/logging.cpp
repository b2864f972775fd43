#include "gateway/logging.h"

#include <fmt/chrono.h>
#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "gateway/json_codec.h"

namespace tau::gateway {

namespace {

constexpr const char* kAccessLogger = "access";
constexpr std::size_t kQueuedLines = 32768;

// The payload part of a JSON line: `"message":"..."` with the text escaped by Boost.JSON, or,
// for the access log, its fields as they were built.
class JsonPayloadFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const std::string escaped = boost::json::serialize(boost::json::string_view(payload));
    static constexpr std::string_view key = "\"message\":";
    dest.append(key.data(), key.data() + key.size());
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonPayloadFlag>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
  if (format == LogFormat::text) {
    return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                                                       spdlog::pattern_time_type::utc);
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonPayloadFlag>('*').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","log":"%n",%*})");
  return formatter;
}

// Set once at start-up, before any I/O thread runs: read without a lock on every request.
LogFormat active_format = LogFormat::json;
std::shared_ptr<spdlog::logger> access_logger;

// Access-log lines not yet handed to the logging thread, each whole and ending in a newline.
struct PendingAccessLines {
  std::mutex mutex;
  std::string lines;
};
PendingAccessLines pending_access;

// Hands the pending lines to the logging thread as one message (its sink prints it verbatim).
void flush_access_lines() {
  std::string lines;
  {
    const std::lock_guard lock(pending_access.mutex);
    lines.swap(pending_access.lines);
  }
  if (lines.empty() || !access_logger)
    return;
  lines.pop_back();  // the sink ends the message with a newline
  access_logger->info(std::string_view(lines));
}

// The line prefix spdlog would have written: the time in UTC to the millisecond. The part up to
// the second is formatted once per second per thread (fmt's chrono formatting is slow: it
// consults the locale), the milliseconds each time.
void append_utc_time(std::string& out, std::chrono::system_clock::time_point now) {
  thread_local std::time_t formatted_second = -1;
  thread_local std::string formatted;  // "YYYY-MM-DDTHH:MM:SS"
  const auto since_epoch = now.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  const std::time_t time = seconds.count();
  if (time != formatted_second) {
    std::tm utc{};
    gmtime_r(&time, &utc);
    formatted = fmt::format("{:%Y-%m-%dT%H:%M:%S}", utc);
    formatted_second = time;
  }
  const auto ms = static_cast<int>(millis.count());
  const char fraction[] = {'.', static_cast<char>('0' + ms / 100),
                           static_cast<char>('0' + ms / 10 % 10), static_cast<char>('0' + ms % 10),
                           'Z'};
  out += formatted;
  out.append(fraction, sizeof fraction);
}

// A duration in milliseconds with three decimals, to the microsecond (as docs/api.md shows it).
// Integer digits: a double's std::to_chars is not in every standard library the lint builds with.
void append_milliseconds(std::string& out, double milliseconds) {
  const long long microseconds = std::max(0LL, std::llround(milliseconds * 1000));
  append_integer(out, microseconds / 1000);
  const auto fraction = static_cast<int>(microseconds % 1000);
  const char decimals[] = {'.', static_cast<char>('0' + fraction / 100),
                           static_cast<char>('0' + fraction / 10 % 10),
                           static_cast<char>('0' + fraction % 10)};
  out.append(decimals, sizeof decimals);
}

}  // namespace

std::optional<LogFormat> log_format_from_string(std::string_view text) {
  if (text == "json")
    return LogFormat::json;
  if (text == "text")
    return LogFormat::text;
  return std::nullopt;
}

LoggingGuard::LoggingGuard(LogFormat format, spdlog::level::level_enum level) {
  active_format = format;
  thread_pool_ = std::make_shared<spdlog::details::thread_pool>(kQueuedLines, 1);
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(make_formatter(format));
  // The access log's batches arrive formatted (see log_access). Both sinks write to stderr
  // under spdlog's one console mutex, so their lines never interleave.
  auto access_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  access_sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%v"));
  for (const auto& [name, logger_sink] :
       {std::pair{"gateway", sink}, {kAccessLogger, access_sink}}) {
    auto logger = std::make_shared<spdlog::async_logger>(
        name, logger_sink, thread_pool_, spdlog::async_overflow_policy::overrun_oldest);
    logger->set_level(level);
    spdlog::register_logger(logger);
  }
  spdlog::set_default_logger(spdlog::get("gateway"));
  access_logger = spdlog::get(kAccessLogger);
}

LoggingGuard::~LoggingGuard() {
  flush_access_lines();  // a hand-over still posted when the I/O threads stopped never runs
  access_logger.reset();
  // Writes every queued line and joins the logging thread; only then may the loggers go.
  thread_pool_.reset();
  spdlog::shutdown();
}

void log_access(const AccessRecord& record, const boost::asio::any_io_executor& executor) {
  spdlog::logger* access = access_logger.get();
  if (!access || !access->should_log(spdlog::level::info))
    return;
  std::string line;
  line.reserve(256);
  // Appended piece by piece: fmt parses a format string at run time, and on the read path that
  // cost more than the rest of the line.
  if (active_format == LogFormat::text) {
    append_utc_time(line, std::chrono::system_clock::now());
    line += " info access ";
    line += record.method;
    line += ' ';
    line += record.route;
    line += ' ';
    append_integer(line, record.status);
    line += ' ';
    append_milliseconds(line, record.duration_ms);
    line += "ms ";
    append_integer(line, record.bytes);
    line += "B principal=";
    line += record.principal;
    line += '\n';
  } else {
    line += R"({"time":")";
    append_utc_time(line, std::chrono::system_clock::now());
    line += R"(","level":"info","log":"access","method":)";
    append_json_string(line, record.method);
    line += R"(,"route":)";
    append_json_string(line, record.route);
    line += R"(,"status":)";
    append_integer(line, record.status);
    line += R"(,"duration_ms":)";
    append_milliseconds(line, record.duration_ms);
    line += R"(,"bytes":)";
    append_integer(line, record.bytes);
    line += R"(,"principal":)";
    append_json_string(line, record.principal);
    line += "}\n";
  }
  bool first_of_batch = false;
  {
    const std::lock_guard lock(pending_access.mutex);
    first_of_batch = pending_access.lines.empty();
    pending_access.lines += line;
  }
  if (first_of_batch)
    boost::asio::post(executor, flush_access_lines);
}

}  // namespace tau::gateway
