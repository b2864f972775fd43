#include "redis/feed_message.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdint>
#include <limits>

namespace tau::redis {

namespace json = boost::json;

namespace {

// A JSON number as an integer of type Int, when it is one exactly. cjson writes every number
// as a double (integers below 2^53 exactly), so integral doubles in range count too.
template <class Int>
std::optional<Int> integer_of(const json::value& value) {
  constexpr double kBelow = std::is_signed_v<Int> ? -0x1p63 : 0.0;
  constexpr double kAbove = std::is_signed_v<Int> ? 0x1p63 : 0x1p64;  // exclusive
  if (const auto* number = value.if_int64()) {
    if (*number < 0 && !std::is_signed_v<Int>)
      return std::nullopt;
    return static_cast<Int>(*number);
  }
  if (const auto* number = value.if_uint64()) {
    if (*number > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
      return std::nullopt;
    return static_cast<Int>(*number);
  }
  if (const auto* number = value.if_double()) {
    if (!(*number >= kBelow && *number < kAbove) || std::trunc(*number) != *number)
      return std::nullopt;
    return static_cast<Int>(*number);
  }
  return std::nullopt;
}

std::optional<std::string> string_of(const json::value& value) {
  if (const auto* text = value.if_string())
    return std::string(*text);
  return std::nullopt;
}

// The event part: nullopt in `event` for {} or [] (no event); false when it is malformed.
bool decode_event(const json::value& value, std::optional<core::SessionEvent>& event) {
  if (const auto* object = value.if_object())
    return object->empty();
  const auto* fields = value.if_array();
  if (fields == nullptr)
    return false;
  if (fields->empty())
    return true;
  // Without data, or with it (never empty: the script leaves out what it does not have).
  if (fields->size() != event_field::data && fields->size() != event_field::count)
    return false;
  const auto sequence_id = integer_of<std::uint64_t>(fields->at(event_field::sequence_id));
  auto event_type = string_of(fields->at(event_field::event_type));
  auto message = string_of(fields->at(event_field::message));
  const auto timestamp = integer_of<std::int64_t>(fields->at(event_field::timestamp));
  std::optional<std::string> data = std::string();
  if (fields->size() == event_field::count) {
    data = string_of(fields->at(event_field::data));
    if (data && data->empty())
      data.reset();
  }
  if (!sequence_id || !event_type || !message || !timestamp || !data)
    return false;
  event = core::SessionEvent{*sequence_id, std::move(*event_type), std::move(*message), *timestamp,
                             std::move(*data)};
  return true;
}

// Reads a payload up to its first array element and stops there: the element, when it is a
// string, is the session id. Every other shape fails the parse at once.
class SessionIdReader {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return false; }
  bool on_array_begin(json::error_code&) { return !std::exchange(in_array_, true); }
  bool on_array_end(std::size_t, json::error_code&) { return false; }
  bool on_object_begin(json::error_code&) { return false; }
  bool on_object_end(std::size_t, json::error_code&) { return false; }
  bool on_string_part(json::string_view part, std::size_t, json::error_code&) {
    id_.append(part.data(), part.size());
    return in_array_;
  }
  bool on_string(json::string_view part, std::size_t, json::error_code&) {
    id_.append(part.data(), part.size());
    complete_ = in_array_;
    return false;  // the rest is not needed
  }
  bool on_key_part(json::string_view, std::size_t, json::error_code&) { return false; }
  bool on_key(json::string_view, std::size_t, json::error_code&) { return false; }
  bool on_number_part(json::string_view, json::error_code&) { return false; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return false; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return false; }
  bool on_double(double, json::string_view, json::error_code&) { return false; }
  bool on_bool(bool, json::error_code&) { return false; }
  bool on_null(json::error_code&) { return false; }
  bool on_comment_part(json::string_view, json::error_code&) { return false; }
  bool on_comment(json::string_view, json::error_code&) { return false; }

  std::optional<std::string> id() && {
    if (!complete_)
      return std::nullopt;
    return std::move(id_);
  }

 private:
  bool in_array_ = false;
  bool complete_ = false;
  std::string id_;
};

}  // namespace

std::optional<FeedMessage> decode_feed_message(std::string_view payload) {
  json::error_code error;
  const json::value value = json::parse(json::string_view(payload.data(), payload.size()), error);
  const auto* fields = value.if_array();
  if (error || fields == nullptr || fields->size() != snapshot_field::count + 1)
    return std::nullopt;
  auto session_id = string_of(fields->at(snapshot_field::session_id));
  auto workspace_id = string_of(fields->at(snapshot_field::workspace_id));
  const auto* status_text = fields->at(snapshot_field::status).if_string();
  const auto status = status_text == nullptr ? std::nullopt
                                             : core::session_status_from_string(std::string_view(
                                                   status_text->data(), status_text->size()));
  const auto started = integer_of<std::int64_t>(fields->at(snapshot_field::started));
  const auto activity = integer_of<std::int64_t>(fields->at(snapshot_field::activity));
  const auto queued = integer_of<std::size_t>(fields->at(snapshot_field::queued_followups));
  if (!session_id || !workspace_id || !status || !started || !activity || !queued)
    return std::nullopt;
  FeedMessage message;
  message.session = core::SessionSnapshot{
      std::move(*session_id), std::move(*workspace_id), *status, *started, *activity, *queued};
  if (!decode_event(fields->at(snapshot_field::count), message.event))
    return std::nullopt;
  return message;
}

std::string encode_feed_message(const FeedMessage& message) {
  const core::SessionSnapshot& session = message.session;
  json::value event = json::object();
  if (message.event) {
    json::array fields{message.event->sequence_id, message.event->event_type,
                       message.event->message, message.event->timestamp_unix_ms};
    if (!message.event->data.empty())
      fields.emplace_back(message.event->data);
    event = std::move(fields);
  }
  return json::serialize(json::array{session.session_id, session.workspace_id,
                                     core::to_string(session.status), session.started_unix_ms,
                                     session.last_activity_unix_ms, session.queued_followups,
                                     std::move(event)});
}

std::optional<std::string> feed_session_id(std::string_view payload) {
  json::basic_parser<SessionIdReader> reader(json::parse_options{});
  json::error_code error;
  reader.write_some(false, payload.data(), payload.size(), error);
  return std::move(reader.handler()).id();
}

}  // namespace tau::redis
