#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/session_types.h"

namespace tau::redis {

// Where the Redis session script (src/redis/gateway.lua) puts a session's snapshot, in its
// replies and at the head of every feed message: [id, workspace, status, started, activity,
// queued follow-ups].
namespace snapshot_field {
enum : std::size_t { session_id, workspace_id, status, started, activity, queued_followups, count };
}
// Where it puts an event, in replays and in feed messages: [sequence id, type, message, time]
// and, only for an event with data, the data (its serialized JSON object, as a string) last.
namespace event_field {
enum : std::size_t { sequence_id, event_type, message, timestamp, data, count };
}

// One message on the feed channel: a session's state after a change, and the event the change
// appended, if it appended one. The script publishes it (its `publish`) as the JSON array
//   [id, workspace, status, started, activity, queued, event]
// where `event` is [sequence_id, type, message, timestamp] (with a fifth element, the data as a
// non-empty string, for an event with data), or {} (cjson's empty table) for a change of state
// only. Numbers may arrive as doubles (cjson writes every number as one).
struct FeedMessage {
  core::SessionSnapshot session;
  std::optional<core::SessionEvent> event;
};

// The message, or nullopt when the payload is not one: not JSON, not an array of seven, a
// field of the wrong type, an unknown status, a number that is not an integer in range.
std::optional<FeedMessage> decode_feed_message(std::string_view payload);
// The payload the script would publish for `message` (for tests and the fuzz target; the
// script is the feed's one real encoder).
std::string encode_feed_message(const FeedMessage& message);
// The session id at the head of a payload, read without decoding the rest, so a gateway skips
// the messages of sessions it neither follows nor owns cheaply; nullopt when the payload does
// not start as a feed message does (`[` then a string).
std::optional<std::string> feed_session_id(std::string_view payload);

}  // namespace tau::redis
