#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tau::http {

// One Server-Sent Events message (WHATWG HTML, "Server-sent events").
struct SseFrame {
  std::optional<std::string> id;
  std::optional<std::string> event;
  std::string data;
  std::optional<std::int64_t> retry_ms;
};

// Serializes a frame, ending with the blank line that dispatches it. Data containing line breaks
// (LF, CR or CRLF) becomes several `data:` lines, which a client joins back with LF; line breaks
// in `id` or `event` would end the field early, so they are replaced by spaces.
std::string serialize_sse(const SseFrame& frame);

// A comment line, which clients ignore (used for keep-alive).
std::string serialize_sse_comment(std::string_view text);

}  // namespace tau::http
