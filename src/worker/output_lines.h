#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace tau::worker {

// Returns `bytes` as valid UTF-8: every ill-formed sequence becomes U+FFFD, so a worker's output
// can always be put into JSON.
std::string sanitize_utf8(std::string_view bytes);

// Turns a byte stream into lines: a line ends at LF (a CR before it is dropped); empty lines are
// skipped; a line longer than `max_line_bytes` is emitted in pieces of at most that size, cut on
// a UTF-8 character boundary where one is near. Each line is sanitized before it is emitted.
class LineSplitter {
 public:
  using Emit = std::function<void(std::string line)>;
  LineSplitter(std::size_t max_line_bytes, Emit emit);

  void feed(std::string_view bytes);
  // At end of stream: emits what is left without a final newline.
  void finish();

 private:
  void emit_piece(std::string_view piece);

  std::size_t max_line_bytes_;
  Emit emit_;
  std::string partial_;
};

}  // namespace tau::worker
