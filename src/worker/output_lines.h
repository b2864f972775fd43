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
// With `dropped`, a longer line is not emitted at all: `dropped` is told its length once it ends
// (for a protocol of one message per line, where a piece of a message is no message).
class LineSplitter {
 public:
  using Emit = std::function<void(std::string line)>;
  using Dropped = std::function<void(std::size_t line_bytes)>;
  LineSplitter(std::size_t max_line_bytes, Emit emit, Dropped dropped = nullptr);

  void feed(std::string_view bytes);
  // At end of stream: emits what is left without a final newline.
  void finish();

 private:
  void emit_piece(std::string_view piece);

  void end_line();

  std::size_t max_line_bytes_;
  Emit emit_;
  Dropped dropped_;
  std::string partial_;
  std::size_t dropped_bytes_ = 0;  // of the line being dropped; 0 when none is
};

}  // namespace tau::worker
