#include "agent/text_coalescer.h"

#include <utility>

namespace tau::agent {

bool TextCoalescer::continues(TextKind kind, std::uint64_t turn,
                              std::string_view message_id) const {
  return pending_ && pending_->kind == kind && pending_->turn == turn &&
         pending_->message_id == message_id;
}

void TextCoalescer::append(TextKind kind, std::uint64_t turn, std::string_view message_id,
                           std::string_view text, boost::json::value raw, std::int64_t now_ms) {
  if (!pending_) {
    pending_.emplace();
    pending_->kind = kind;
    pending_->turn = turn;
    pending_->message_id = std::string(message_id);
    pending_->first_piece_ms = now_ms;
  }
  pending_->text.append(text);
  pending_->raw.push_back(std::move(raw));
}

std::optional<std::int64_t> TextCoalescer::due_ms() const {
  if (!pending_)
    return std::nullopt;
  return pending_->first_piece_ms + kFlushIntervalMs;
}

std::optional<AgentEvent> TextCoalescer::take() {
  if (!pending_)
    return std::nullopt;
  PendingText pending = std::move(*pending_);
  pending_.reset();
  AgentEvent event;
  event.data["turn"] = pending.turn;
  if (pending.kind == TextKind::message) {
    event.event_type = std::string(event_types::message);
    event.message = summarize(pending.text);
    event.data["message_id"] = pending.message_id;
  } else {
    event.event_type = std::string(event_types::thought);
    event.message = "thinking: " + summarize(pending.text);
  }
  event.data["text"] = pending.text;
  event.data["raw"] = std::move(pending.raw);
  return event;
}

std::string summarize(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes)
    return std::string(text);
  std::size_t cut = max_bytes;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;
  return std::string(text.substr(0, cut)) + "...";
}

}  // namespace tau::agent
