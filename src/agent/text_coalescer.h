#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/agent_types.h"

namespace tau::agent {

enum class TextKind { message, thought };

// The text a TextCoalescer gathers. (At namespace scope: as a nested class with default member
// initializers it is not default-constructible inside its own class, and clang refuses
// std::optional<Pending>::emplace().)
struct PendingText {
  TextKind kind = TextKind::message;
  std::uint64_t turn = 0;
  std::string message_id;
  std::string text;
  boost::json::array raw;  // every piece's update, in order
  std::int64_t first_piece_ms = 0;
};

// Agents stream text in small pieces (ACP agent_message_chunk, often a few characters each);
// one log event per piece would swamp the session log. This gathers consecutive pieces of one
// message (or one run of thought) into a single agent.message / agent.thought event, due
// kFlushIntervalMs after its first piece. The owner decides when to take it: when it is due, and
// before anything else is logged, so the log keeps the agent's order.
class TextCoalescer {
 public:
  static constexpr std::int64_t kFlushIntervalMs = 50;

  // Whether a piece with these would join the pending text (false when nothing is pending).
  bool continues(TextKind kind, std::uint64_t turn, std::string_view message_id) const;
  // Adds a piece; the owner has taken any pending text that it does not continue.
  void append(TextKind kind, std::uint64_t turn, std::string_view message_id, std::string_view text,
              boost::json::value raw, std::int64_t now_ms);
  // When the pending text should be taken; nullopt when nothing is pending.
  std::optional<std::int64_t> due_ms() const;
  // The pending text as one event (nothing is pending afterwards); nullopt when there was none.
  std::optional<AgentEvent> take();

 private:
  std::optional<PendingText> pending_;
};

// `text` cut to at most max_bytes at a UTF-8 character boundary, with "..." when cut: event
// summaries stay one short line while data carries the whole text.
std::string summarize(std::string_view text, std::size_t max_bytes = 200);

}  // namespace tau::agent
