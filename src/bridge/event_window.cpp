#include "bridge/event_window.h"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <utility>

namespace tau::bridge {

core::SharedEvent EventWindow::append(core::SessionEvent event,
                                      std::optional<std::string> encoded) {
  if (event.sequence_id <= last_id_)
    throw std::logic_error("an event window takes events in increasing id order");
  advance_to(event.sequence_id - 1);
  auto retained = std::make_shared<core::RetainedEvent>();
  retained->event = std::move(event);
  if (encoded)
    retained->encoded = std::move(*encoded);
  else if (encoder_ != nullptr && *encoder_)
    retained->encoded = (*encoder_)(retained->event);
  encoded_bytes_total_ += retained->encoded.size();
  retained->encoded_bytes_through = encoded_bytes_total_;
  last_id_ = retained->event.sequence_id;
  retained_bytes_ += memory_of(*retained);
  events_.push_back(retained);
  while (events_.size() > max_events_)
    pop_oldest();
  return retained;
}

void EventWindow::advance_to(std::uint64_t last_id) {
  if (last_id <= last_id_)
    return;
  events_.clear();
  retained_bytes_ = 0;
  last_id_ = last_id;
}

void EventWindow::let_go_through(std::uint64_t id) {
  while (!events_.empty() && events_.front()->event.sequence_id <= id)
    pop_oldest();
}

void EventWindow::pop_oldest() {
  retained_bytes_ -= memory_of(*events_.front());
  events_.pop_front();
}

std::uint64_t EventWindow::memory_of(const core::RetainedEvent& retained) {
  // The event, its shared_ptr control block and the deque's slot, with allocator rounding.
  constexpr std::uint64_t kPerEvent = 160;
  return kPerEvent + retained.encoded.size() + retained.event.message.size() +
         retained.event.event_type.size() + retained.event.data.size();
}

std::vector<core::SharedEvent> EventWindow::slice(std::uint64_t after, std::size_t limit,
                                                  std::uint64_t through) const {
  std::vector<core::SharedEvent> events;
  if (events_.empty())
    return events;
  through = std::min(through, last_id_);
  // Nothing after the cursor: this also covers the largest cursor, with no id after it.
  if (after >= through)
    return events;
  const std::uint64_t first = first_id();
  if (through < first)
    return events;
  // Positions by arithmetic: [start, end) within the retained events. `after < through`, so
  // `after + 1` cannot wrap.
  const std::uint64_t start = std::max(after + 1, first) - first;
  const std::uint64_t end = through - first + 1;
  const std::uint64_t count = std::min<std::uint64_t>(end - start, limit);
  const auto from = events_.begin() + static_cast<std::ptrdiff_t>(start);
  events.assign(from, from + static_cast<std::ptrdiff_t>(count));
  return events;
}

core::SharedEvent EventWindow::find(std::uint64_t sequence_id) const {
  if (events_.empty() || sequence_id < first_id() || sequence_id > last_id_)
    return nullptr;
  return events_[static_cast<std::size_t>(sequence_id - first_id())];
}

bool EventWindow::lost_after(std::uint64_t cursor, std::uint64_t through) const {
  // Lost when an id in (cursor, through] is older than the oldest retained one, which is
  // last_id_ - size() + 1: cursor + 1 < that, written without overflow.
  return cursor < std::min(through, last_id_) && cursor < last_id_ - events_.size();
}

Replay replay_of(const EventWindow& window, const VisiblePart& visible,
                 core::SessionSnapshot session, std::optional<std::uint64_t> after,
                 std::size_t limit) {
  Replay replay;
  replay.session = std::move(session);
  replay.events = window.slice(after.value_or(0), limit, visible.through_sequence_id);
  replay.first_retained_sequence_id = window.first_id();
  replay.last_sequence_id = visible.through_sequence_id;
  replay.encoded_bytes_total = visible.encoded_bytes;
  return replay;
}

FollowUpdate follow_update(const EventWindow& window, const VisiblePart& visible,
                           core::SessionSnapshot session, std::uint64_t after,
                           std::size_t max_events) {
  FollowUpdate update;
  update.session = std::move(session);
  if (window.lost_after(after, visible.through_sequence_id)) {
    update.events_lost = true;  // the follower must start over, with a gap
    return update;
  }
  update.events = window.slice(after, max_events, visible.through_sequence_id);
  const std::uint64_t given_through =
      update.events.empty() ? after : update.events.back()->event.sequence_id;
  update.finished = visible.ended && given_through >= visible.through_sequence_id;
  return update;
}

}  // namespace tau::bridge
