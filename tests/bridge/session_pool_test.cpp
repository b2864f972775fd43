// What only SessionPool does: its store (tickets, readers seeing only what is durable, restore
// after a restart, purge) and the session vocabulary. Every other rule of a session service is
// in the contract suite (tests/contract), run against both pools.
#include "bridge/session_pool.h"

#include <gtest/gtest.h>

#include "bridge/recording_follower.h"
#include "core/text.h"
#include "store/memory_store.h"
#include "support/manual_clock.h"
#include "support/pool_fixtures.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tau::bridge {
namespace {

using namespace tau::core;  // the session vocabulary the pool speaks
using test::ManualClock;

constexpr std::int64_t kStartMs = 1'700'000'000'000;
constexpr std::int64_t kTimeoutMs = test::kPoolTimeoutMs;

using test::SequentialIds;

bridge::PoolLimits test_limits() {
  return test::test_pool_limits();
}

// Runs `call` and returns the Error code it threw, or nullopt if it threw nothing.
template <class Call>
std::optional<ErrorCode> bridge_error_of(Call&& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.code();
  }
  return std::nullopt;
}

std::vector<std::uint64_t> sequence_ids(const std::vector<SharedEvent>& events) {
  std::vector<std::uint64_t> ids;
  for (const SharedEvent& retained : events)
    ids.push_back(retained->event.sequence_id);
  return ids;
}

std::vector<std::string> messages(const std::vector<SharedEvent>& events) {
  std::vector<std::string> texts;
  for (const SharedEvent& retained : events)
    texts.push_back(retained->event.message);
  return texts;
}

// --- small helpers in session_types -----------------------------------------------------------

TEST(SessionTypesTest, StatusNamesRoundTrip) {
  for (SessionStatus status :
       {SessionStatus::running, SessionStatus::completed, SessionStatus::failed,
        SessionStatus::timed_out, SessionStatus::closed}) {
    EXPECT_EQ(session_status_from_string(to_string(status)), status);
  }
  EXPECT_EQ(to_string(SessionStatus::timed_out), "timed_out");
  EXPECT_EQ(session_status_from_string("Running"), std::nullopt);
  EXPECT_EQ(session_status_from_string(""), std::nullopt);
  EXPECT_FALSE(is_terminal(SessionStatus::running));
  EXPECT_TRUE(is_terminal(SessionStatus::closed));
}

TEST(SessionTypesTest, TrimAsciiWhitespace) {
  EXPECT_EQ(trim_ascii_whitespace("  a b\t\r\n"), "a b");
  EXPECT_EQ(trim_ascii_whitespace("\f\v"), "");
  EXPECT_EQ(trim_ascii_whitespace(""), "");
  EXPECT_EQ(trim_ascii_whitespace("x"), "x");
}

TEST(SessionTypesTest, ErrorCodesHaveStableApiNames) {
  EXPECT_EQ(to_string(ErrorCode::invalid_workspace_id), "invalid_workspace_id");
  EXPECT_EQ(to_string(ErrorCode::invalid_message), "invalid_message");
  EXPECT_EQ(to_string(ErrorCode::session_not_found), "external_coding_agent_session_not_found");
  EXPECT_EQ(to_string(ErrorCode::session_not_running), "external_coding_agent_session_not_running");
  EXPECT_EQ(to_string(ErrorCode::session_limit_reached),
            "external_coding_agent_session_limit_reached");
}

// A store whose writes become durable only when the test says so, like a writer thread that has
// not committed yet.
class HeldStore final : public store::SessionStore {
 public:
  store::StoredState load_sessions(store::LoadScope scope) override {
    return inner_.load_sessions(scope);
  }
  store::Ticket submit(store::StoreWrite write) override { return inner_.submit(std::move(write)); }
  store::Ticket durable_ticket() const override { return durable_; }
  void when_durable(store::Ticket ticket, std::function<void(bool)> done) override {
    if (ticket <= durable_)
      done(true);
    else
      waiters_.emplace_back(ticket, std::move(done));
  }
  void set_durable_listener(std::function<void(store::Ticket)> listener) override {
    listener_ = std::move(listener);
  }
  void flush() override {}
  store::StoreInfo info() const override { return {}; }
  bool failed() const override { return false; }
  const metrics::Histogram& commit_seconds() const override { return inner_.commit_seconds(); }

  // Commits everything submitted so far.
  void commit() {
    durable_ = inner_.durable_ticket();
    if (listener_)
      listener_(durable_);
    for (auto& [ticket, done] : std::exchange(waiters_, {}))
      done(true);
  }

 private:
  store::MemoryStore inner_;
  store::Ticket durable_ = 0;
  std::function<void(store::Ticket)> listener_;
  std::vector<std::pair<store::Ticket, std::function<void(bool)>>> waiters_;
};

TEST(SessionPoolStoreTest, EveryChangeReturnsALaterTicket) {
  ManualClock clock{kStartMs};
  SessionPool pool(test_limits(), clock.as_clock());
  const auto opened = pool.open("w");
  const auto progress = pool.append_progress(opened.session.session_id, "p");
  const auto followup = pool.append_followup(opened.session.session_id, "f");
  const auto drained = pool.drain_followups(opened.session.session_id, 10);
  const auto closed = pool.close(opened.session.session_id);
  EXPECT_GT(opened.commit_ticket, 0u);
  EXPECT_GT(progress.commit_ticket, opened.commit_ticket);
  EXPECT_GT(followup.commit_ticket, progress.commit_ticket);
  EXPECT_GT(drained.commit_ticket, followup.commit_ticket);
  EXPECT_GT(closed.commit_ticket, drained.commit_ticket);
  // Closing again changes nothing, and answers with the ticket of the close that did.
  EXPECT_EQ(pool.close(opened.session.session_id).commit_ticket, closed.commit_ticket);
}

TEST(SessionPoolStoreTest, ARestoredPoolContinuesExactlyWhereTheOldOneStopped) {
  ManualClock clock{kStartMs};
  auto shared_store = std::make_shared<store::MemoryStore>();
  SequentialIds ids;
  std::string running, closed;
  {
    SessionPool before(test_limits(), clock.as_clock(), ids.as_generator(), nullptr, shared_store);
    running = before.open("w").session.session_id;
    closed = before.open("v").session.session_id;
    before.append_progress(running, "one");
    before.append_followup(running, "two");
    before.append_followup(running, "three");
    before.drain_followups(running, 1);
    before.append_progress(closed, "x");
    before.close(closed);
    clock.advance(5);
  }
  // A generator that starts over, as a restarted process's might: restored ids stay taken.
  SequentialIds fresh_ids;
  SessionPool after(test_limits(), clock.as_clock(), fresh_ids.as_generator(), nullptr,
                    shared_store);
  EXPECT_EQ(after.restore(shared_store->load().sessions),
            0u);  // nothing had a worker: nothing to write
  const SessionSnapshot restored = after.get(running);
  EXPECT_EQ(restored.status, SessionStatus::running);
  EXPECT_EQ(restored.workspace_id, "w");
  EXPECT_EQ(restored.started_unix_ms, kStartMs);
  EXPECT_EQ(restored.queued_followups, 1u);
  EXPECT_EQ(after.get(closed).status, SessionStatus::closed);
  EXPECT_EQ(messages(after.replay(running, std::nullopt, 10).events),
            (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(after.drain_followups(running, 10).followups, std::vector<std::string>{"three"});
  EXPECT_EQ(after.append_progress(running, "four").event.sequence_id, 4u);
  // The workspace still maps to its running session, and the active count is restored.
  EXPECT_EQ(after.open("w").session.session_id, running);
  EXPECT_FALSE(after.open("w").created);
  EXPECT_EQ(after.runtime().active_sessions, 1u);
  EXPECT_EQ(after.open("v").session.session_id, "session-3");
}

TEST(SessionPoolStoreTest, SessionsThatHadAWorkerFailOnRestoreWithARestartEvent) {
  ManualClock clock{kStartMs};
  auto shared_store = std::make_shared<store::MemoryStore>();
  std::string with_worker, without_worker;
  {
    SessionPool before(test_limits(), clock.as_clock(), nullptr, nullptr, shared_store);
    with_worker = before.open("a", true).session.session_id;
    without_worker = before.open("b").session.session_id;
    before.append_event(with_worker, "subprocess.stdout", "hello");
  }
  clock.advance(7);
  SessionPool after(test_limits(), clock.as_clock(), nullptr, nullptr, shared_store);
  std::vector<std::string> ended;
  after.set_end_listener([&](const SessionSnapshot& s) { ended.push_back(s.session_id); });
  EXPECT_GT(after.restore(shared_store->load().sessions), 0u);
  EXPECT_EQ(ended, std::vector<std::string>{with_worker});
  EXPECT_EQ(after.get(with_worker).status, SessionStatus::failed);
  EXPECT_EQ(after.get(without_worker).status, SessionStatus::running);
  const Replay replay = after.replay(with_worker, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 2u);
  EXPECT_EQ(replay.events[1]->event.event_type, SessionPool::kRestartEventType);
  EXPECT_EQ(replay.events[1]->event.sequence_id, 2u);
  EXPECT_EQ(replay.events[1]->event.timestamp_unix_ms, kStartMs + 7);
  // The failure is stored too: a second restart does not repeat it.
  SessionPool again(test_limits(), clock.as_clock(), nullptr, nullptr, shared_store);
  EXPECT_EQ(again.restore(shared_store->load().sessions), 0u);
  EXPECT_EQ(again.replay(with_worker, std::nullopt, 10).events.size(), 2u);
  EXPECT_NE(again.open("a").session.session_id, with_worker);  // its workspace is free
}

TEST(SessionPoolStoreTest, AnEventsDataIsReplayedAndSurvivesARestore) {
  ManualClock clock{kStartMs};
  auto shared_store = std::make_shared<store::MemoryStore>();
  // The encoding is made from the whole event, data included.
  const EventEncoder encoder = [](const SessionEvent& e) { return e.message + "|" + e.data; };
  const std::string data = R"({"tool":"edit","lines":[1,2]})";
  std::string id;
  {
    SessionPool before(test_limits(), clock.as_clock(), nullptr, encoder, shared_store);
    id = before.open("w", true).session.session_id;
    const AppendResult typed = before.append_event(id, "agent.tool_call", "edited a file", data);
    EXPECT_EQ(typed.event.data, data);
    before.append_progress(id, "plain");
    before.append_events(id, {{"agent.message", "batched", R"({"n":1})"}, {"t", "none"}});
    const Replay replay = before.replay(id, std::nullopt, 10);
    ASSERT_EQ(replay.events.size(), 4u);
    EXPECT_EQ(replay.events[0]->event.data, data);
    EXPECT_EQ(replay.events[0]->encoded, "edited a file|" + data);
    EXPECT_EQ(replay.events[1]->event.data, "");
    EXPECT_EQ(replay.events[2]->event.data, R"({"n":1})");
    EXPECT_EQ(replay.events[3]->event.data, "");
  }
  SessionPool after(test_limits(), clock.as_clock(), nullptr, encoder, shared_store);
  after.restore(shared_store->load().sessions);
  const Replay replay = after.replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 5u);  // and the restart's own event, without data
  EXPECT_EQ(replay.events[0]->event.event_type, "agent.tool_call");
  EXPECT_EQ(replay.events[0]->event.data, data);
  EXPECT_EQ(replay.events[0]->encoded, "edited a file|" + data);
  EXPECT_EQ(replay.events[1]->event.data, "");
  EXPECT_EQ(replay.events[2]->event.data, R"({"n":1})");
  EXPECT_EQ(replay.events[4]->event.event_type, SessionPool::kRestartEventType);
  EXPECT_EQ(replay.events[4]->event.data, "");
}

TEST(SessionPoolStoreTest, ARestoredSessionKeepsItsNewestEventsUnderTheCurrentRetention) {
  ManualClock clock{kStartMs};
  auto shared_store = std::make_shared<store::MemoryStore>();
  std::string id;
  {
    SessionPool before(test_limits(), clock.as_clock(), nullptr, nullptr, shared_store);
    id = before.open("w").session.session_id;
    for (const char* message : {"e1", "e2", "e3", "e4"})
      before.append_progress(id, message);
  }
  // Restarted with a smaller retention: the window keeps the newest, and ids go on.
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 2;
  SessionPool after(
      limits, clock.as_clock(), nullptr,
      [](const SessionEvent& e) { return "<" + e.message + ">"; }, shared_store);
  after.restore(shared_store->load().sessions);
  const Replay replay = after.replay(id, std::nullopt, 10);
  EXPECT_EQ(messages(replay.events), (std::vector<std::string>{"e3", "e4"}));
  EXPECT_EQ(replay.first_retained_sequence_id, 3u);
  EXPECT_EQ(replay.last_sequence_id, 4u);
  EXPECT_EQ(replay.events[1]->encoded, "<e4>");
  EXPECT_TRUE(after.events_after(id, 1, 10).events_lost);
  EXPECT_EQ(after.append_progress(id, "e5").event.sequence_id, 5u);
}

TEST(SessionPoolStoreTest, ReadersSeeOnlyWhatTheStoreMadeDurable) {
  ManualClock clock{kStartMs};
  auto held = std::make_shared<HeldStore>();
  SessionPool pool(
      test_limits(), clock.as_clock(), nullptr,
      [](const SessionEvent& e) { return std::string(e.sequence_id, 'x'); }, held);
  const std::string id = pool.open("w").session.session_id;
  held->commit();
  auto follower = std::make_shared<test::RecordingFollower>();
  pool.follow(id, std::nullopt, 10, follower);
  pool.append_progress(id, "a");
  pool.append_progress(id, "b");
  EXPECT_TRUE(pool.replay(id, std::nullopt, 10).events.empty());
  EXPECT_TRUE(pool.events_after(id, 0, 10).events.empty());
  EXPECT_EQ(follower->notifications(), 0);
  held->commit();
  // One commit of two events wakes the follower once, with both visible.
  EXPECT_EQ(follower->notifications(), 1);
  EXPECT_EQ(follower->last_total(), 3u);
  EXPECT_EQ(sequence_ids(pool.events_after(id, 0, 10).events), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(pool.replay(id, std::nullopt, 10).last_sequence_id, 2u);

  // An end is not final for followers until it is durable, nor are the events before it.
  pool.append_progress(id, "c");
  pool.close(id);
  FollowUpdate update = pool.events_after(id, 2, 10);
  EXPECT_TRUE(update.events.empty());
  EXPECT_FALSE(update.finished);
  auto late = std::make_shared<test::RecordingFollower>();
  pool.follow(id, 2, 10, late);  // still followed: its end is not durable yet
  held->commit();
  EXPECT_EQ(late->notifications(), 1);
  update = pool.events_after(id, 2, 10);
  EXPECT_EQ(sequence_ids(update.events), std::vector<std::uint64_t>{3});
  EXPECT_TRUE(update.finished);
  // A repeated close answers only once that end is durable (here it is).
  EXPECT_LE(pool.close(id).commit_ticket, held->durable_ticket());
  // Now ended for good: nobody is registered or notified again.
  pool.append_event(id, "subprocess.exit", "code 0");
  held->commit();
  EXPECT_EQ(late->notifications(), 1);
}

TEST(SessionPoolStoreTest, PurgedSessionsAreDeletedFromTheStore) {
  // The purge rules themselves are the contract's (tests/contract); here: the store forgets.
  ManualClock clock{kStartMs};
  auto shared_store = std::make_shared<store::MemoryStore>();
  PoolLimits limits = test_limits();
  limits.session_retention_ms = 1000;
  SessionPool pool(limits, clock.as_clock(), nullptr, nullptr, shared_store);
  const std::string old_id = pool.open("a").session.session_id;
  pool.open("b");
  pool.append_progress(old_id, "x");
  pool.close(old_id);
  EXPECT_EQ(pool.purge_ended(clock.now() + 1001), 1u);
  const auto stored = shared_store->load();
  ASSERT_EQ(stored.sessions.size(), 1u);
  EXPECT_NE(stored.sessions[0].record.snapshot.session_id, old_id);
}

TEST(SessionPoolStoreTest, ARepeatedCloseWaitsForTheCloseThatEndedTheSession) {
  ManualClock clock{kStartMs};
  auto held = std::make_shared<HeldStore>();
  SessionPool pool(test_limits(), clock.as_clock(), nullptr, nullptr, held);
  const std::string id = pool.open("w").session.session_id;
  held->commit();
  const EndResult first = pool.close(id);
  const EndResult second = pool.close(id);  // before the first is committed
  EXPECT_EQ(second.session.status, SessionStatus::closed);
  EXPECT_EQ(second.commit_ticket, first.commit_ticket);
  EXPECT_GT(second.commit_ticket, held->durable_ticket());  // so its answer must wait
  held->commit();
  EXPECT_LE(second.commit_ticket, held->durable_ticket());
}

}  // namespace
}  // namespace tau::bridge
