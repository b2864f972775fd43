#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "bridge/session_service.h"
#include "gateway/blocking_calls.h"
#include "gateway/stream_counts.h"
#include "http/server.h"

namespace tau::gateway {

struct StreamSettings {
  std::int64_t retry_ms = 3000;
  std::int64_t heartbeat_ms = 15000;
  std::uint64_t max_buffered_bytes = 1024 * 1024;
  std::int64_t stream_max_ms = 0;            // 0: no cap
  std::uint64_t max_follow_streams = 10000;  // more at once: 503 stream_limit_reached
  // The snapshot's `agent` object for a session (null without one); unset: no `agent` field.
  std::function<boost::json::value(std::string_view session_id)> agent_of;
};

struct StreamRequest {
  std::string session_id;
  std::optional<std::uint64_t> cursor;
  std::size_t limit = 0;
  bool follow = false;
};

// An event's SSE frame (`id`, `event: external_coding_agent.progress`, `data`). The pool encodes
// each event once with this and every stream shares the result.
std::string encode_event_frame(const core::SessionEvent& event);

// Writes a session's event stream: the retry hint and snapshot, a gap frame when retention
// dropped events after the cursor, the replay, then either `done` or, when following, every new
// event as it is appended until the session ends (final snapshot, then `done`). A follower whose
// unsent backlog passes the limit, or who fell behind retention, is disconnected to resume from
// its last id, and so is one whose live feed broke (an `error` frame, then the end, without
// `done`). Unknown sessions throw before anything is written. The opening calls (follow or
// replay) are made through `blocking`; the live reads (`events_after`, `unfollow`) on the
// connection's executor.
// The stream is counted in `counts` while it is open; a follow stream past
// `settings.max_follow_streams` is refused (ApiError 503 `stream_limit_reached`) first.
// A follow stream returns once its opening is written: the exchange is then detached
// (http::Exchange::detach) and the live part goes on in callbacks, holding no coroutine frame.
boost::asio::awaitable<void> write_event_stream(http::Exchange& exchange,
                                                bridge::SessionService& pool, StreamRequest request,
                                                const StreamSettings& settings,
                                                StreamCounts& counts, BlockingCalls& blocking);

}  // namespace tau::gateway
