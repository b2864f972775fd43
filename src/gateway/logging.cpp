#include "gateway/logging.h"

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <memory>

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
    if (msg.logger_name == kAccessLogger) {
      dest.append(payload.data(), payload.data() + payload.size());
      return;
    }
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

std::string json_string(std::string_view text) {
  return boost::json::serialize(boost::json::string_view(text));
}

// Set once at start-up, before any I/O thread runs: read without a lock on every request.
LogFormat active_format = LogFormat::json;
std::shared_ptr<spdlog::logger> access_logger;

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
  for (const char* name : {"gateway", kAccessLogger}) {
    auto logger = std::make_shared<spdlog::async_logger>(
        name, sink, thread_pool_, spdlog::async_overflow_policy::overrun_oldest);
    logger->set_level(level);
    spdlog::register_logger(logger);
  }
  spdlog::set_default_logger(spdlog::get("gateway"));
  access_logger = spdlog::get(kAccessLogger);
}

LoggingGuard::~LoggingGuard() {
  access_logger.reset();
  // Writes every queued line and joins the logging thread; only then may the loggers go.
  thread_pool_.reset();
  spdlog::shutdown();
}

void log_access(const AccessRecord& record) {
  spdlog::logger* access = access_logger.get();
  if (!access || !access->should_log(spdlog::level::info))
    return;
  if (active_format == LogFormat::text) {
    access->info("access {} {} {} {:.3f}ms {}B principal={}", record.method, record.route,
                 record.status, record.duration_ms, record.bytes, record.principal);
    return;
  }
  access->info(
      R"("method":{},"route":{},"status":{},"duration_ms":{:.3f},"bytes":{},"principal":{})",
      json_string(record.method), json_string(record.route), record.status, record.duration_ms,
      record.bytes, json_string(record.principal));
}

}  // namespace tau::gateway
