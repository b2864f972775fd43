#include "worker/output_lines.h"

#include <cstdint>
#include <utility>

namespace tau::worker {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence starting at `text[0]` (RFC 3629, table 3-7 of
// the Unicode standard), or 0 when it is ill-formed or truncated.
std::size_t sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  const std::uint8_t lead = byte(0);
  if (lead < 0x80)
    return 1;
  std::size_t length;
  std::uint8_t low = 0x80;
  std::uint8_t high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0)
      low = 0xA0;  // no overlong forms
    if (lead == 0xED)
      high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0)
      low = 0x90;  // no overlong forms
    if (lead == 0xF4)
      high = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length)
    return 0;
  if (byte(1) < low || byte(1) > high)
    return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF)
      return 0;
  }
  return length;
}

bool is_continuation(char c) {
  return (static_cast<std::uint8_t>(c) & 0xC0) == 0x80;
}

}  // namespace

std::string sanitize_utf8(std::string_view bytes) {
  std::string result;
  result.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::size_t length = sequence_length(bytes.substr(i));
    if (length == 0) {
      result.append(kReplacement);
      ++i;
    } else {
      result.append(bytes.substr(i, length));
      i += length;
    }
  }
  return result;
}

LineSplitter::LineSplitter(std::size_t max_line_bytes, Emit emit, Dropped dropped)
    : max_line_bytes_(max_line_bytes < 4 ? 4 : max_line_bytes),
      emit_(std::move(emit)),
      dropped_(std::move(dropped)) {}

void LineSplitter::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t newline = bytes.find('\n');
    const std::string_view part = bytes.substr(0, newline);
    partial_.append(part);
    if (dropped_ && (dropped_bytes_ > 0 || partial_.size() > max_line_bytes_)) {
      // Counted, not kept, so a line without end cannot grow memory.
      dropped_bytes_ += partial_.size();
      partial_.clear();
    }
    // Emit full-size pieces as soon as they exist, so a line without end cannot grow memory.
    while (partial_.size() > max_line_bytes_) {
      std::size_t cut = max_line_bytes_;
      // Back off to a character boundary (at most 3 bytes) so no character is split in two.
      for (std::size_t back = 0; back < 3 && cut > 1 && is_continuation(partial_[cut]); ++back) {
        --cut;
      }
      if (is_continuation(partial_[cut]))
        cut = max_line_bytes_;
      emit_piece(std::string_view(partial_).substr(0, cut));
      partial_.erase(0, cut);
    }
    if (newline == std::string_view::npos)
      return;
    end_line();
    bytes.remove_prefix(newline + 1);
  }
}

void LineSplitter::finish() {
  end_line();
}

void LineSplitter::end_line() {
  if (dropped_bytes_ > 0) {
    dropped_(std::exchange(dropped_bytes_, 0));
    return;
  }
  if (!partial_.empty() && partial_.back() == '\r')
    partial_.pop_back();
  emit_piece(partial_);
  partial_.clear();
}

void LineSplitter::emit_piece(std::string_view piece) {
  if (piece.empty())
    return;
  emit_(sanitize_utf8(piece));
}

}  // namespace tau::worker
