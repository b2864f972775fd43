// The Redis feed's messages (redis/feed_message.h): decode_feed_message, encode_feed_message and
// feed_session_id, on any bytes. None crashes, and:
//  - decode_feed_message accepts only what Boost.JSON parses as an array of seven whose first
//    element is a string;
//  - a decoded message encodes to a payload that decodes to the same message, and encoding that
//    again gives the same payload (the encoding is a fixed point);
//  - whenever a full parse shows the payload is an array that starts with a string,
//    feed_session_id gives that string (it may also name one for a payload that is invalid
//    after it: the skip path reads no further), so it never disagrees with the decoder.
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "redis/feed_message.h"

namespace {

namespace json = boost::json;
using tau::redis::FeedMessage;

std::string_view g_input;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_feed_message: %s\npayload (%zu bytes): ", what.c_str(),
               g_input.size());
  std::fwrite(g_input.data(), 1, g_input.size(), stderr);
  std::fputc('\n', stderr);
  std::abort();
}

bool same(const FeedMessage& a, const FeedMessage& b) {
  const auto& s = a.session;
  const auto& t = b.session;
  if (s.session_id != t.session_id || s.workspace_id != t.workspace_id || s.status != t.status ||
      s.started_unix_ms != t.started_unix_ms ||
      s.last_activity_unix_ms != t.last_activity_unix_ms ||
      s.queued_followups != t.queued_followups || a.event.has_value() != b.event.has_value())
    return false;
  if (!a.event)
    return true;
  return a.event->sequence_id == b.event->sequence_id &&
         a.event->event_type == b.event->event_type && a.event->message == b.event->message &&
         a.event->timestamp_unix_ms == b.event->timestamp_unix_ms && a.event->data == b.event->data;
}

// The first element of the payload's array when a full parse shows it is a string.
std::optional<std::string> parsed_session_id(std::string_view payload, bool& array_of_seven) {
  json::error_code error;
  const json::value value = json::parse(json::string_view(payload.data(), payload.size()), error);
  const auto* array = error ? nullptr : value.if_array();
  array_of_seven = array != nullptr && array->size() == 7;
  if (array == nullptr || array->empty() || !array->front().is_string())
    return std::nullopt;
  return std::string(array->front().get_string());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_input = std::string_view(reinterpret_cast<const char*>(data), size);
  bool array_of_seven = false;
  const std::optional<std::string> parsed_id = parsed_session_id(g_input, array_of_seven);
  const std::optional<std::string> sniffed_id = tau::redis::feed_session_id(g_input);
  const std::optional<FeedMessage> message = tau::redis::decode_feed_message(g_input);

  if (parsed_id && sniffed_id != parsed_id)
    fail("feed_session_id does not give the array's first string");
  if (message) {
    if (!array_of_seven || !parsed_id)
      fail("decoded something that is not an array of seven starting with a string");
    if (message->session.session_id != *parsed_id)
      fail("the decoded session id is not the array's first string");
    const std::string encoded = tau::redis::encode_feed_message(*message);
    const std::optional<FeedMessage> again = tau::redis::decode_feed_message(encoded);
    if (!again)
      fail("the encoding of a decoded message does not decode: " + encoded);
    if (!same(*message, *again))
      fail("the encoding of a decoded message decodes to another message: " + encoded);
    if (tau::redis::encode_feed_message(*again) != encoded)
      fail("encoding is not a fixed point: " + encoded);
    if (tau::redis::feed_session_id(encoded) != message->session.session_id)
      fail("feed_session_id misreads an encoded message: " + encoded);
  }
  return 0;
}
