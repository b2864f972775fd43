#include "http/sse.h"

namespace tau::http {

namespace {

void append_single_line_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  for (char c : value)
    out.push_back(c == '\n' || c == '\r' || c == '\0' ? ' ' : c);
  out.push_back('\n');
}

void append_data_lines(std::string& out, std::string_view data) {
  std::size_t start = 0;
  while (true) {
    const std::size_t end = data.find_first_of("\r\n", start);
    out.append("data: ");
    out.append(data.substr(start, end == std::string_view::npos ? end : end - start));
    out.push_back('\n');
    if (end == std::string_view::npos)
      break;
    start = end + 1;
    if (data[end] == '\r' && start < data.size() && data[start] == '\n')
      ++start;
  }
}

}  // namespace

std::string serialize_sse(const SseFrame& frame) {
  std::string out;
  out.reserve(frame.data.size() + 64);
  if (frame.retry_ms) {
    out.append("retry: ");
    out.append(std::to_string(*frame.retry_ms));
    out.push_back('\n');
  }
  if (frame.id)
    append_single_line_field(out, "id", *frame.id);
  if (frame.event)
    append_single_line_field(out, "event", *frame.event);
  append_data_lines(out, frame.data);
  out.push_back('\n');
  return out;
}

std::string serialize_sse_comment(std::string_view text) {
  std::string out = ": ";
  for (char c : text)
    out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  out.append("\n\n");
  return out;
}

}  // namespace tau::http
