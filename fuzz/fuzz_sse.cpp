// serialize_sse: whatever a frame holds, a client reading the serialized bytes gets the same
// message back. Input bytes become two frames and a comment between them (FuzzedDataProvider),
// serialized back to back and read by a WHATWG "Interpreting an event stream" parser.
//
// "The same message", precisely (http/sse.h documents the rules this checks):
//  - data: byte for byte, except that every line break (CRLF, lone CR or LF) arrives as LF;
//    SSE has no way to send a CR. NUL bytes and invalid UTF-8 pass through unchanged (a browser
//    would then decode invalid UTF-8 to U+FFFD: that is the stream's encoding, not framing).
//  - id and event: byte for byte, except that CR, LF and NUL each arrive as one space: a line
//    break would end the field and a client drops an id containing NUL. An absent id leaves the
//    client's last event id as it was; an absent or empty event arrives as type "message".
//  - retry: a retry_ms >= 0 sets the client's reconnection time to exactly that value. SSE has no
//    negative retry: a negative one (never sent by the gateway; --sse-retry-ms is 0..86400000)
//    is written as is and ignored by the client, and changes nothing else.
//  - each frame dispatches exactly one message, a comment none, and nothing is left over.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/sse.h"

namespace {

using tau::http::SseFrame;

struct Message {
  std::string type;
  std::string data;
  std::string last_event_id;
  std::optional<std::uint64_t> reconnection_time_ms;  // as set when the message was dispatched
};

struct Parsed {
  std::vector<Message> messages;
  bool leftover = false;  // bytes after the last line break, or fields never dispatched
};

// WHATWG HTML, 9.2.6 "Interpreting an event stream", over bytes.
Parsed parse_event_stream(std::string_view stream) {
  Parsed parsed;
  std::string data;
  std::string event_type;
  std::string last_event_id;
  std::optional<std::uint64_t> reconnection_time;
  bool pending_fields = false;

  auto process_field = [&](std::string_view field, std::string_view value) {
    pending_fields = true;
    if (field == "event") {
      event_type = std::string(value);
    } else if (field == "data") {
      data.append(value);
      data.push_back('\n');
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos)
        last_event_id = std::string(value);
    } else if (field == "retry") {
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos) {
        std::uint64_t number = 0;
        for (char c : value)
          number = number * 10 + static_cast<std::uint64_t>(c - '0');  // <= 19 digits here
        if (value.size() <= 19)
          reconnection_time = number;
      }
    }
  };
  auto dispatch = [&] {
    pending_fields = false;
    if (data.empty()) {
      event_type.clear();
      return;
    }
    if (data.back() == '\n')
      data.pop_back();
    parsed.messages.push_back(Message{event_type.empty() ? "message" : event_type, data,
                                      last_event_id, reconnection_time});
    data.clear();
    event_type.clear();
  };

  std::size_t position = 0;
  while (position < stream.size()) {
    const std::size_t end = stream.find_first_of("\r\n", position);
    if (end == std::string_view::npos) {
      parsed.leftover = true;
      break;
    }
    const std::string_view line = stream.substr(position, end - position);
    position = end + 1;
    if (stream[end] == '\r' && position < stream.size() && stream[position] == '\n')
      ++position;
    if (line.empty()) {
      dispatch();
    } else if (line.front() == ':') {
      // a comment
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      process_field(line.substr(0, colon), value);
    } else {
      process_field(line, "");
    }
  }
  if (pending_fields)
    parsed.leftover = true;
  return parsed;
}

std::string single_line(std::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0')
      c = ' ';
  }
  return out;
}

std::string lf_line_breaks(std::string_view data) {
  std::string out;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < data.size() && data[i + 1] == '\n')
        ++i;
    } else {
      out.push_back(data[i]);
    }
  }
  return out;
}

[[noreturn]] void fail(const char* what, const std::string& stream) {
  std::fprintf(stderr, "fuzz_sse: %s\nserialized (%zu bytes):\n", what, stream.size());
  std::fwrite(stream.data(), 1, stream.size(), stderr);
  std::fputc('\n', stderr);
  std::abort();
}

SseFrame consume_frame(FuzzedDataProvider& input, bool last) {
  SseFrame frame;
  if (input.ConsumeBool())
    frame.id = input.ConsumeRandomLengthString(64);
  if (input.ConsumeBool())
    frame.event = input.ConsumeRandomLengthString(64);
  if (input.ConsumeBool()) {
    // Mostly the values a gateway sends, sometimes any 64-bit value.
    frame.retry_ms = input.ConsumeBool() ? input.ConsumeIntegralInRange<std::int64_t>(0, 86400000)
                                         : input.ConsumeIntegral<std::int64_t>();
  }
  frame.data = last ? input.ConsumeRemainingBytesAsString() : input.ConsumeRandomLengthString(512);
  return frame;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider input(bytes, size);
  const std::string comment = input.ConsumeRandomLengthString(32);
  const SseFrame first = consume_frame(input, false);
  const SseFrame second = consume_frame(input, true);

  const std::string first_bytes = tau::http::serialize_sse(first);
  const std::string comment_bytes = tau::http::serialize_sse_comment(comment);
  const std::string stream = first_bytes + comment_bytes + tau::http::serialize_sse(second);
  if (first_bytes.size() < 2 || first_bytes.compare(first_bytes.size() - 2, 2, "\n\n") != 0)
    fail("a frame does not end with a blank line", stream);
  if (comment_bytes.front() != ':' ||
      comment_bytes.find_first_of("\r\n") != comment_bytes.size() - 2)
    fail("a comment is not one comment line and a blank line", stream);

  static const bool print = [] {
    const char* value = std::getenv("FUZZ_SSE_PRINT");  // 1: show the serialized stream
    return value != nullptr && std::string_view(value) == "1";
  }();
  if (print)
    std::fprintf(stderr, "--- %zu bytes:\n%s---\n", stream.size(), stream.c_str());

  const Parsed parsed = parse_event_stream(stream);
  if (parsed.leftover)
    fail("bytes or fields left over after the last frame", stream);
  if (parsed.messages.size() != 2)
    fail("two frames did not give exactly two messages", stream);

  std::string last_event_id;
  std::optional<std::uint64_t> reconnection_time;
  for (std::size_t i = 0; i < 2; ++i) {
    const SseFrame& frame = i == 0 ? first : second;
    const Message& message = parsed.messages[i];
    if (message.data != lf_line_breaks(frame.data))
      fail("data differs", stream);
    const std::string type = frame.event ? single_line(*frame.event) : std::string();
    if (message.type != (type.empty() ? "message" : type))
      fail("event type differs", stream);
    if (frame.id)
      last_event_id = single_line(*frame.id);
    if (message.last_event_id != last_event_id)
      fail("last event id differs", stream);
    if (frame.retry_ms && *frame.retry_ms >= 0)
      reconnection_time = static_cast<std::uint64_t>(*frame.retry_ms);
    if (message.reconnection_time_ms != reconnection_time)
      fail("reconnection time differs", stream);
  }
  return 0;
}
