#include "bridge/event_window.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "bridge/follower_set.h"

namespace tau::bridge {
namespace {

constexpr std::uint64_t kMaxCursor = std::numeric_limits<std::uint64_t>::max();

const core::EventEncoder kEncoder = [](const core::SessionEvent& event) {
  return "<" + std::to_string(event.sequence_id) + ":" + event.message + ">";
};

core::SessionEvent event(std::uint64_t id, std::string message = "e") {
  return core::SessionEvent{id, "progress", std::move(message), 1000};
}

std::vector<std::uint64_t> ids(const std::vector<core::SharedEvent>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& retained : events)
    out.push_back(retained->event.sequence_id);
  return out;
}

// A window holding ids 1..count, at most `max` of them.
EventWindow window_through(std::uint64_t count, std::size_t max) {
  EventWindow window(max, &kEncoder);
  for (std::uint64_t id = 1; id <= count; ++id)
    window.append(event(id));
  return window;
}

using Ids = std::vector<std::uint64_t>;

TEST(EventWindowTest, AnEmptyWindowHasNothingAndLosesNothing) {
  const EventWindow window(3, &kEncoder);
  EXPECT_TRUE(window.empty());
  EXPECT_EQ(window.first_id(), 0u);
  EXPECT_EQ(window.last_id(), 0u);
  EXPECT_EQ(window.encoded_bytes_total(), 0u);
  EXPECT_TRUE(window.slice(0, 10).empty());
  EXPECT_TRUE(window.slice(kMaxCursor, 10).empty());
  EXPECT_FALSE(window.lost_after(0));
  EXPECT_FALSE(window.lost_after(kMaxCursor));
  EXPECT_EQ(window.find(1), nullptr);
}

TEST(EventWindowTest, EncodesEachEventOnceWithRunningByteTotals) {
  EventWindow window(10, &kEncoder);
  const core::SharedEvent first = window.append(event(1, "a"));
  const core::SharedEvent second = window.append(event(2, "bc"));
  EXPECT_EQ(first->encoded, "<1:a>");
  EXPECT_EQ(second->encoded, "<2:bc>");
  EXPECT_EQ(first->encoded_bytes_through, 5u);
  EXPECT_EQ(second->encoded_bytes_through, 11u);
  EXPECT_EQ(window.encoded_bytes_total(), 11u);
  // Readers share the retained event itself.
  EXPECT_EQ(window.slice(0, 10)[1].get(), second.get());
  EXPECT_EQ(window.find(2).get(), second.get());
}

TEST(EventWindowTest, AGivenEncodingIsKeptAndAMissingEncoderEncodesAsEmpty) {
  EventWindow window(10, &kEncoder);
  EXPECT_EQ(window.append(event(1), std::string("given"))->encoded, "given");
  EXPECT_EQ(window.encoded_bytes_total(), 5u);

  EventWindow plain(10, nullptr);
  EXPECT_EQ(plain.append(event(1))->encoded, "");
  EXPECT_EQ(plain.encoded_bytes_total(), 0u);
}

TEST(EventWindowTest, RetentionDropsTheOldestWhileIdsAndBytesKeepCounting) {
  const EventWindow window = window_through(5, 3);
  EXPECT_EQ(window.size(), 3u);
  EXPECT_EQ(window.first_id(), 3u);
  EXPECT_EQ(window.last_id(), 5u);
  EXPECT_EQ(ids(window.slice(0, 10)), (Ids{3, 4, 5}));
  EXPECT_EQ(window.encoded_bytes_total(), 5u * 5u);  // "<n:e>" each, dropped ones too
  EXPECT_EQ(window.find(2), nullptr);
  EXPECT_EQ(window.find(3)->event.sequence_id, 3u);
  EXPECT_EQ(window.find(6), nullptr);
}

TEST(EventWindowTest, SliceTakesWhatFollowsTheCursorUpToTheLimit) {
  const EventWindow window = window_through(5, 10);
  EXPECT_EQ(ids(window.slice(0, 100)), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(ids(window.slice(2, 100)), (Ids{3, 4, 5}));
  EXPECT_EQ(ids(window.slice(2, 2)), (Ids{3, 4}));
  EXPECT_EQ(ids(window.slice(4, 100)), (Ids{5}));
  EXPECT_TRUE(window.slice(5, 100).empty());
  EXPECT_TRUE(window.slice(6, 100).empty());
  EXPECT_TRUE(window.slice(0, 0).empty());
}

TEST(EventWindowTest, ACursorBeforeTheRetainedEventsGetsWhatIsStillThere) {
  const EventWindow window = window_through(5, 3);
  EXPECT_EQ(ids(window.slice(0, 100)), (Ids{3, 4, 5}));
  EXPECT_EQ(ids(window.slice(1, 2)), (Ids{3, 4}));
  EXPECT_EQ(ids(window.slice(3, 100)), (Ids{4, 5}));
}

TEST(EventWindowTest, SliceStopsAtTheVisibleBound) {
  const EventWindow window = window_through(6, 4);  // holds 3..6
  EXPECT_EQ(ids(window.slice(0, 100, 4)), (Ids{3, 4}));
  EXPECT_EQ(ids(window.slice(3, 100, 5)), (Ids{4, 5}));
  EXPECT_TRUE(window.slice(4, 100, 4).empty());
  EXPECT_TRUE(window.slice(0, 100, 2).empty());  // nothing retained is visible yet
  EXPECT_TRUE(window.slice(0, 100, 0).empty());
  EXPECT_EQ(ids(window.slice(0, 100, kMaxCursor)), (Ids{3, 4, 5, 6}));  // beyond the newest
}

TEST(EventWindowTest, TheLargestCursorIsValidAndHasNothingAfterIt) {
  const EventWindow window = window_through(5, 3);
  EXPECT_TRUE(window.slice(kMaxCursor, 100).empty());
  EXPECT_TRUE(window.slice(kMaxCursor, 100, kMaxCursor).empty());
  EXPECT_TRUE(window.slice(kMaxCursor - 1, 100, kMaxCursor).empty());
  EXPECT_FALSE(window.lost_after(kMaxCursor));
  EXPECT_FALSE(window.lost_after(kMaxCursor, kMaxCursor));

  // And a window whose ids reach it.
  EventWindow top(3, &kEncoder);
  top.advance_to(kMaxCursor - 2);
  top.append(event(kMaxCursor - 1));
  top.append(event(kMaxCursor));
  EXPECT_EQ(top.first_id(), kMaxCursor - 1);
  EXPECT_EQ(ids(top.slice(kMaxCursor - 2, 10)), (Ids{kMaxCursor - 1, kMaxCursor}));
  EXPECT_EQ(ids(top.slice(kMaxCursor - 1, 10)), (Ids{kMaxCursor}));
  EXPECT_TRUE(top.slice(kMaxCursor, 10).empty());
  EXPECT_FALSE(top.lost_after(kMaxCursor));
  EXPECT_FALSE(top.lost_after(kMaxCursor - 2));
  EXPECT_TRUE(top.lost_after(kMaxCursor - 3));
  EXPECT_THROW(top.append(event(kMaxCursor)), std::logic_error);
}

TEST(EventWindowTest, LostAfterMeansAnUnseenEventWasDropped) {
  const EventWindow window = window_through(6, 3);  // holds 4..6
  EXPECT_TRUE(window.lost_after(0));
  EXPECT_TRUE(window.lost_after(2));
  EXPECT_FALSE(window.lost_after(3));  // 4 is the next it needs, and it is there
  EXPECT_FALSE(window.lost_after(6));
  EXPECT_FALSE(window.lost_after(7));
  // Only what is visible counts: nothing past the cursor is visible, so nothing is lost.
  EXPECT_FALSE(window.lost_after(2, 2));
  EXPECT_TRUE(window.lost_after(2, 3));
}

TEST(EventWindowTest, AppendTakesIncreasingIdsAndAGapStartsTheWindowOver) {
  EventWindow window(10, &kEncoder);
  window.append(event(1));
  window.append(event(2));
  EXPECT_THROW(window.append(event(2)), std::logic_error);
  EXPECT_THROW(window.append(event(1)), std::logic_error);
  window.append(event(5));  // 3 and 4 are not here: 1 and 2 are no longer consecutive with it
  EXPECT_EQ(window.first_id(), 5u);
  EXPECT_EQ(ids(window.slice(0, 10)), (Ids{5}));
  EXPECT_TRUE(window.lost_after(2));
  EXPECT_FALSE(window.lost_after(4));
}

TEST(EventWindowTest, AdvanceToRecordsEventsThatAreNotRetained) {
  EventWindow window = window_through(2, 10);
  window.advance_to(1);  // not newer: nothing changes
  EXPECT_EQ(ids(window.slice(0, 10)), (Ids{1, 2}));
  window.advance_to(4);
  EXPECT_TRUE(window.empty());
  EXPECT_EQ(window.last_id(), 4u);
  EXPECT_EQ(window.first_id(), 0u);
  EXPECT_TRUE(window.lost_after(2));
  EXPECT_FALSE(window.lost_after(4));
  EXPECT_EQ(window.append(event(5))->event.sequence_id, 5u);
  EXPECT_EQ(window.first_id(), 5u);
}

TEST(EventWindowTest, AWindowThatKeepsNothingStillCounts) {
  EventWindow window(0, &kEncoder);
  EXPECT_EQ(window.append(event(1))->encoded, "<1:e>");
  EXPECT_TRUE(window.empty());
  EXPECT_EQ(window.last_id(), 1u);
  EXPECT_TRUE(window.lost_after(0));
  EXPECT_FALSE(window.lost_after(1));
}

core::SessionSnapshot snapshot(core::SessionStatus status) {
  core::SessionSnapshot session;
  session.session_id = "s";
  session.status = status;
  return session;
}

TEST(EventWindowTest, ReplayShowsTheVisiblePart) {
  const EventWindow window = window_through(6, 4);  // holds 3..6
  const VisiblePart released{5, 123, false};
  const Replay replay =
      replay_of(window, released, snapshot(core::SessionStatus::running), std::nullopt, 10);
  EXPECT_EQ(ids(replay.events), (Ids{3, 4, 5}));
  EXPECT_EQ(replay.first_retained_sequence_id, 3u);
  EXPECT_EQ(replay.last_sequence_id, 5u);
  EXPECT_EQ(replay.encoded_bytes_total, 123u);
  EXPECT_EQ(replay.session.session_id, "s");
  EXPECT_EQ(ids(replay_of(window, released, {}, 3, 1).events), (Ids{4}));
  EXPECT_TRUE(replay_of(window, released, {}, kMaxCursor, 10).events.empty());

  const Replay all = replay_of(window, everything(window, false), {}, 4, 10);
  EXPECT_EQ(ids(all.events), (Ids{5, 6}));
  EXPECT_EQ(all.last_sequence_id, 6u);
  EXPECT_EQ(all.encoded_bytes_total, window.encoded_bytes_total());
}

TEST(EventWindowTest, FollowUpdateFinishesOnlyOnceTheEndAndEveryEventAreGivenOut) {
  const EventWindow window = window_through(5, 10);
  const auto ended = snapshot(core::SessionStatus::closed);

  FollowUpdate update = follow_update(window, everything(window, true), ended, 2, 2);
  EXPECT_EQ(ids(update.events), (Ids{3, 4}));
  EXPECT_FALSE(update.finished);  // 5 is still to come
  EXPECT_FALSE(update.events_lost);
  EXPECT_EQ(update.session.status, core::SessionStatus::closed);

  update = follow_update(window, everything(window, true), ended, 4, 2);
  EXPECT_EQ(ids(update.events), (Ids{5}));
  EXPECT_TRUE(update.finished);
  EXPECT_TRUE(follow_update(window, everything(window, true), ended, 5, 2).finished);
  EXPECT_TRUE(follow_update(window, everything(window, true), ended, kMaxCursor, 2).finished);

  // Not ended, or its end not visible yet: never finished.
  EXPECT_FALSE(follow_update(window, everything(window, false), ended, 5, 2).finished);
  // The end is visible up to 4 only: finished once 4 is given out.
  EXPECT_TRUE(follow_update(window, VisiblePart{4, 0, true}, ended, 3, 2).finished);
}

TEST(EventWindowTest, FollowUpdateReportsLostEventsAndNothingElse) {
  const EventWindow window = window_through(6, 3);  // holds 4..6
  const FollowUpdate lost =
      follow_update(window, everything(window, true), snapshot(core::SessionStatus::closed), 2, 10);
  EXPECT_TRUE(lost.events_lost);
  EXPECT_TRUE(lost.events.empty());
  EXPECT_FALSE(lost.finished);
  EXPECT_EQ(lost.session.session_id, "s");

  const FollowUpdate kept = follow_update(window, everything(window, false), {}, 3, 10);
  EXPECT_FALSE(kept.events_lost);
  EXPECT_EQ(ids(kept.events), (Ids{4, 5, 6}));
  EXPECT_FALSE(follow_update(window, everything(window, false), {}, kMaxCursor, 10).events_lost);
}

class CountingFollower : public SessionFollower {
 public:
  void notify(std::uint64_t total) override {
    ++notifications;
    last_total = total;
  }
  int notifications = 0;
  std::uint64_t last_total = 0;
};

TEST(FollowerSetTest, NotifiesEveryFollowerUntilRemovedOrCleared) {
  FollowerSet followers;
  auto a = std::make_shared<CountingFollower>();
  auto b = std::make_shared<CountingFollower>();
  followers.add(a);
  followers.add(b);
  EXPECT_EQ(followers.size(), 2u);
  followers.notify_all(7);
  EXPECT_EQ(a->notifications, 1);
  EXPECT_EQ(b->last_total, 7u);

  followers.remove(a.get());
  followers.remove(a.get());  // harmless when gone
  followers.notify_all(9);
  EXPECT_EQ(a->notifications, 1);
  EXPECT_EQ(b->notifications, 2);
  EXPECT_EQ(b->last_total, 9u);

  followers.clear();
  EXPECT_TRUE(followers.empty());
  EXPECT_EQ(b.use_count(), 1) << "a cleared set holds no follower";
}

}  // namespace
}  // namespace tau::bridge
