#include "gateway/json_codec.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>

#include "core/session_types.h"
#include "core/text.h"

namespace tau::gateway {

namespace json = boost::json;

namespace {
ApiError malformed(const std::string& message) {
  return ApiError(400, "malformed_json", message);
}

// An event's stored data as the object it holds. Data that is somehow not a JSON object (the
// gateway only stores objects it made) is shown as text rather than failing the whole read.
json::object event_data_of(std::string_view data) {
  boost::system::error_code ec;
  json::value value = json::parse(data, ec);
  if (!ec && value.is_object())
    return std::move(value.as_object());
  return json::object{{"raw_text", data}};
}
}  // namespace

json::object error_envelope(unsigned status, std::string_view code, std::string_view message) {
  json::object error;
  error["type"] = status >= 500 ? "server_error" : "invalid_request_error";
  error["code"] = code;
  error["message"] = message;
  return json::object{{"error", std::move(error)}};
}

json::object to_json(const core::SessionSnapshot& session) {
  return json::object{
      {"session_id", session.session_id},
      {"workspace_id", session.workspace_id},
      {"status", core::to_string(session.status)},
      {"started_unix_ms", session.started_unix_ms},
      {"last_activity_unix_ms", session.last_activity_unix_ms},
      {"queued_followups", session.queued_followups},
  };
}

void append_json_string(std::string& out, std::string_view text) {
  // Printable ASCII but the quote and the backslash is written as is; anything else (control
  // characters, bytes past ASCII) goes through Boost.JSON, whose escaping stays the rule.
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
  if (!plain) {
    out += json::serialize(json::string_view(text));
    return;
  }
  out += '"';
  out.append(text.data(), text.size());
  out += '"';
}

void append_session_json(std::string& out, const core::SessionSnapshot& session,
                         const json::value& agent) {
  out += R"({"session_id":)";
  append_json_string(out, session.session_id);
  out += R"(,"workspace_id":)";
  append_json_string(out, session.workspace_id);
  out += R"(,"status":)";
  append_json_string(out, core::to_string(session.status));
  out += R"(,"started_unix_ms":)";
  append_integer(out, session.started_unix_ms);
  out += R"(,"last_activity_unix_ms":)";
  append_integer(out, session.last_activity_unix_ms);
  out += R"(,"queued_followups":)";
  append_integer(out, session.queued_followups);
  out += R"(,"agent":)";
  if (agent.is_null())
    out += "null";
  else
    out += json::serialize(agent);
  out += '}';
}

json::object to_json(const core::SessionEvent& event) {
  json::object object{
      {"sequence_id", event.sequence_id},
      {"event_type", event.event_type},
      {"message", event.message},
      {"timestamp_unix_ms", event.timestamp_unix_ms},
  };
  // Only typed events have data: the others render exactly as before data existed.
  if (!event.data.empty())
    object["data"] = event_data_of(event.data);
  return object;
}

json::object to_json(const bridge::RuntimeInfo& runtime) {
  return json::object{
      {"active_sessions", runtime.active_sessions},
      {"inactivity_timeout_ms", runtime.inactivity_timeout_ms},
      {"max_active_sessions", runtime.max_active_sessions},
      {"max_events_per_session", runtime.max_events_per_session},
  };
}

json::object parse_json_object(std::string_view body, bool body_optional) {
  if (core::trim_ascii_whitespace(body).empty()) {
    if (body_optional)
      return {};
    throw malformed("request body is empty; expected a JSON object");
  }
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec)
    throw malformed("request body is not valid JSON: " + ec.message());
  if (!value.is_object())
    throw malformed("request body must be a JSON object");
  return std::move(value.as_object());
}

std::string_view required_string(const json::object& body, std::string_view field) {
  const json::value* value = body.if_contains(field);
  if (value == nullptr)
    throw malformed("field '" + std::string(field) + "' is required");
  if (!value->is_string())
    throw malformed("field '" + std::string(field) + "' must be a string");
  return value->get_string();
}

std::optional<std::string_view> optional_string(const json::object& body, std::string_view field) {
  const json::value* value = body.if_contains(field);
  if (value == nullptr || value->is_null())
    return std::nullopt;
  return required_string(body, field);
}

std::optional<std::int64_t> optional_integer(const json::object& body, std::string_view field,
                                             std::int64_t min, std::int64_t max) {
  const json::value* value = body.if_contains(field);
  if (value == nullptr)
    return std::nullopt;
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (value->is_int64()) {
    const std::int64_t number = value->get_int64();
    if (number >= min && number <= max)
      return number;
  }
  throw malformed("field '" + std::string(field) + "' must be " + range);
}

}  // namespace tau::gateway
