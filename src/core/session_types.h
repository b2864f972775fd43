#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tau::core {

enum class SessionStatus { running, completed, failed, timed_out, closed };
inline constexpr std::size_t kSessionStatusCount = 5;
inline constexpr std::size_t status_index(SessionStatus status) {
  return static_cast<std::size_t>(status);
}

std::string_view to_string(SessionStatus status);
std::optional<SessionStatus> session_status_from_string(std::string_view text);
inline bool is_terminal(SessionStatus status) {
  return status != SessionStatus::running;
}

struct SessionSnapshot {
  std::string session_id;
  std::string workspace_id;
  SessionStatus status = SessionStatus::running;
  std::int64_t started_unix_ms = 0;
  std::int64_t last_activity_unix_ms = 0;
  std::size_t queued_followups = 0;
};

struct SessionEvent {
  std::uint64_t sequence_id = 0;
  std::string event_type;
  std::string message;
  std::int64_t timestamp_unix_ms = 0;
  // The event's structured payload, a serialized JSON object (typed events of agent sessions);
  // empty when it has none. Kept as text: the gateway's codec makes and renders it.
  std::string data = {};  // (= {}: aggregate initializers may leave it out)
};

// A retained event with its encoded form (for the gateway, its SSE frame), made once when the
// event is appended and shared by every replay and follower instead of re-encoded per reader.
struct RetainedEvent {
  SessionEvent event;
  std::string encoded;
  // Encoded bytes of the session's events up to and including this one, so a follower's backlog
  // is the session's total minus this value of the last event it has sent.
  std::uint64_t encoded_bytes_through = 0;
};
using SharedEvent = std::shared_ptr<const RetainedEvent>;
using EventEncoder = std::function<std::string(const SessionEvent&)>;

namespace event_types {
inline constexpr std::string_view progress = "progress";
inline constexpr std::string_view followup = "followup";
}  // namespace event_types

// The input rules every session service applies: the text trimmed, or Error
// invalid_workspace_id / invalid_message (errors.h) when nothing is left.
std::string_view checked_workspace_id(std::string_view workspace_id);
std::string_view checked_message(std::string_view message);

}  // namespace tau::core
