#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "bridge/session_service.h"
#include "core/session_types.h"

namespace tau::bridge {

// The newest events of one session, as its readers get them. Both session pools keep one per
// session they serve (SessionPool for each session, RedisSessionPool for each followed one).
//
// - Ids are consecutive: the retained events are exactly the ids (last_id() - size(),
//   last_id()], so an event is found by arithmetic, never by a search.
// - Each event is encoded once, when it is appended, and shared by every reader; the window
//   counts the encoded bytes of everything appended to it (a follower's backlog is the total
//   minus what it has sent).
// - At most `max_events` are kept: appending more drops the oldest (retention), while ids keep
//   counting.
// - A cursor is the id of the last event a reader has; every cursor is valid, up to
//   UINT64_MAX, which simply has nothing after it.
//
// Not thread-safe: the lock of whoever owns it guards it.
class EventWindow {
 public:
  // `encoder` (may be null: events are then encoded as empty text) must outlive the window.
  EventWindow(std::size_t max_events, const core::EventEncoder* encoder)
      : max_events_(max_events), encoder_(encoder) {}

  // Appends the event after the newest one, and returns it as readers will share it. Its id
  // must be greater than last_id(); when it is not the next one, the events before it are no
  // longer consecutive with it and are let go. `encoded`: the event's encoding when the caller
  // already has it (the same event encoded by another window); otherwise the encoder makes it.
  core::SharedEvent append(core::SessionEvent event,
                           std::optional<std::string> encoded = std::nullopt);
  // Records that the events up to `last_id` exist (when greater than last_id()): the retained
  // ones are let go, as they are no longer the newest.
  void advance_to(std::uint64_t last_id);
  // Lets the retained events with ids up to `id` go (a store keeps them); ids keep counting.
  void let_go_through(std::uint64_t id);

  // Retained events with after < id <= through, oldest first, at most `limit`.
  std::vector<core::SharedEvent> slice(std::uint64_t after, std::size_t limit,
                                       std::uint64_t through) const;
  std::vector<core::SharedEvent> slice(std::uint64_t after, std::size_t limit) const {
    return slice(after, limit, last_id_);
  }
  // The retained event with this id, or null.
  core::SharedEvent find(std::uint64_t sequence_id) const;
  // Whether events a reader with this cursor has not seen, up to `through`, were dropped by
  // retention: it can only resume with a gap.
  bool lost_after(std::uint64_t cursor, std::uint64_t through) const;
  bool lost_after(std::uint64_t cursor) const { return lost_after(cursor, last_id_); }

  // The oldest retained event's id; 0 when none is retained.
  std::uint64_t first_id() const { return events_.empty() ? 0 : last_id_ - events_.size() + 1; }
  // The newest event's id, retained or not (0 before the first).
  std::uint64_t last_id() const { return last_id_; }
  std::size_t size() const { return events_.size(); }
  bool empty() const { return events_.empty(); }
  // Encoded bytes of every event appended to this window.
  std::uint64_t encoded_bytes_total() const { return encoded_bytes_total_; }
  // About what the retained events take in memory: their text, their encoding and a fixed
  // allowance per event for the structures around them.
  std::uint64_t retained_bytes() const { return retained_bytes_; }
  static std::uint64_t memory_of(const core::RetainedEvent& retained);

 private:
  std::size_t max_events_;
  const core::EventEncoder* encoder_;
  std::deque<core::SharedEvent> events_;
  std::uint64_t last_id_ = 0;
  std::uint64_t encoded_bytes_total_ = 0;
  std::uint64_t retained_bytes_ = 0;

  void pop_oldest();
};

// What readers may see of a window. SessionPool shows only what its store has made durable
// (the released part); RedisSessionPool shows everything it has applied (`everything`).
struct VisiblePart {
  std::uint64_t through_sequence_id = 0;
  std::uint64_t encoded_bytes = 0;  // of the events up to through_sequence_id
  bool ended = false;               // readers see that the session has ended
};
inline VisiblePart everything(const EventWindow& window, bool ended) {
  return VisiblePart{window.last_id(), window.encoded_bytes_total(), ended};
}

// The replay both pools answer from a window: visible events after `after` (all when absent),
// at most `limit`.
Replay replay_of(const EventWindow& window, const VisiblePart& visible,
                 core::SessionSnapshot session, std::optional<std::uint64_t> after,
                 std::size_t limit);

// What a follower with cursor `after` is given, decided here for both pools: up to
// `max_events` visible events after it; `events_lost` (and nothing else) when some it has not
// seen were dropped by retention; `finished` once the session's end is visible and every
// visible event has been given out.
FollowUpdate follow_update(const EventWindow& window, const VisiblePart& visible,
                           core::SessionSnapshot session, std::uint64_t after,
                           std::size_t max_events);

}  // namespace tau::bridge
