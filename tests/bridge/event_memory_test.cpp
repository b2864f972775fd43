// The pool's budget for events held in memory (PoolLimits::max_event_memory_bytes): what it lets
// go, what it reads back from a real SQLite store, and what it refuses without one.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bridge/session_pool.h"
#include "core/errors.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "support/manual_clock.h"
#include "support/pool_fixtures.h"

namespace tau::bridge {
namespace {

constexpr std::int64_t kStartMs = 1'700'000'000'000;
constexpr std::uint64_t kBudget = 1 << 20;
constexpr std::size_t kEventBytes = 16 << 10;

PoolLimits budget_limits() {
  PoolLimits limits = test::test_pool_limits();
  limits.max_active_sessions = 64;
  limits.max_events_per_session = 64;
  limits.max_event_memory_bytes = kBudget;
  return limits;
}

// A distinct 16 KiB message per session and event, so a replay that mixed them up would show.
std::string message_of(int session, int event) {
  std::string text = "session " + std::to_string(session) + " event " + std::to_string(event) + " ";
  text.resize(kEventBytes, static_cast<char>('a' + (session + event) % 26));
  return text;
}

std::vector<std::string> messages(const std::vector<core::SharedEvent>& events) {
  std::vector<std::string> texts;
  for (const auto& retained : events)
    texts.push_back(retained->event.message);
  return texts;
}

std::string encode(const core::SessionEvent& event) {
  return "id:" + std::to_string(event.sequence_id) + "\n" + event.message + "\n\n";
}

class StateDir {
 public:
  StateDir() {
    char pattern[] = "/tmp/tau-event-memory-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~StateDir() { std::filesystem::remove_all(path_); }
  std::string database() const { return path_ + "/gateway.db"; }

 private:
  std::string path_;
};

class EventMemoryTest : public testing::Test {
 protected:
  std::unique_ptr<SessionPool> open_pool(std::shared_ptr<store::SessionStore> store) {
    auto pool = std::make_unique<SessionPool>(budget_limits(), clock_.as_clock(), nullptr,
                                              core::EventEncoder(encode), store);
    pool->restore(store->load_sessions(store::LoadScope::running_events).sessions);
    return pool;
  }

  test::ManualClock clock_{kStartMs};
};

TEST_F(EventMemoryTest, EndedSessionsLetTheirEventsGoAndAreReplayedFromTheStoreIdentically) {
  StateDir dir;
  constexpr int kSessions = 40;
  constexpr int kEvents = 8;  // 40 x 8 x 16 KiB, with their encodings: about 10 times the budget
  std::vector<std::string> ids;
  {
    auto store = std::make_shared<store::SqliteStore>(dir.database(), store::Durability::normal);
    auto pool = open_pool(store);
    for (int s = 0; s < kSessions; ++s) {
      const std::string id = pool->open("w" + std::to_string(s)).session.session_id;
      for (int e = 1; e <= kEvents; ++e)
        pool->append_progress(id, message_of(s, e));
      pool->close(id);
      store->flush();  // durable, so the next session's appends may let this one go
      ids.push_back(id);
      EXPECT_LE(pool->counters().event_memory_bytes, kBudget) << s;
    }
    EXPECT_GT(pool->counters().events_let_go, 0u);
    for (int s = 0; s < kSessions; ++s) {
      SCOPED_TRACE(s);
      std::vector<std::string> expected;
      for (int e = 1; e <= kEvents; ++e)
        expected.push_back(message_of(s, e));
      const Replay replay = pool->replay(ids[s], std::nullopt, 100);
      EXPECT_EQ(messages(replay.events), expected);
      EXPECT_EQ(replay.first_retained_sequence_id, 1u);
      EXPECT_EQ(replay.last_sequence_id, static_cast<std::uint64_t>(kEvents));
      // Encoded as they were when appended, and resumable from any cursor.
      ASSERT_EQ(replay.events.size(), expected.size());
      EXPECT_EQ(replay.events[2]->encoded, encode(replay.events[2]->event));
      EXPECT_EQ(messages(pool->replay(ids[s], 5, 2).events),
                (std::vector<std::string>{message_of(s, 6), message_of(s, 7)}));
      const FollowStart follow = pool->follow(ids[s], 6, 100, nullptr);
      EXPECT_EQ(messages(follow.replay.events),
                (std::vector<std::string>{message_of(s, 7), message_of(s, 8)}));
    }
  }
  // After a restart the ended sessions' events stay on disk until a reader asks.
  auto store = std::make_shared<store::SqliteStore>(dir.database(), store::Durability::normal);
  auto pool = open_pool(store);
  EXPECT_EQ(pool->counters().event_memory_bytes, 0u);
  for (int s : {0, 17, kSessions - 1}) {
    const Replay replay = pool->replay(ids[s], 0, 100);
    ASSERT_EQ(replay.events.size(), static_cast<std::size_t>(kEvents)) << s;
    EXPECT_EQ(replay.events.front()->event.message, message_of(s, 1));
    EXPECT_EQ(replay.events.back()->event.message, message_of(s, kEvents));
    EXPECT_EQ(replay.events.back()->event.sequence_id, static_cast<std::uint64_t>(kEvents));
  }
}

TEST_F(EventMemoryTest, AnEventsDataIsReadBackFromTheStoreWithIt) {
  StateDir dir;
  const std::string data = R"({"tool":"edit","path":"src/a.cpp"})";
  std::string id;
  {
    auto store = std::make_shared<store::SqliteStore>(dir.database(), store::Durability::normal);
    auto pool = open_pool(store);
    id = pool->open("w").session.session_id;
    pool->append_event(id, "agent.tool_call", "edited a file", data);
    pool->append_progress(id, "plain");
    pool->close(id);
    store->flush();
  }
  // Ended: its events stay on disk until this replay reads them.
  auto store = std::make_shared<store::SqliteStore>(dir.database(), store::Durability::normal);
  auto pool = open_pool(store);
  EXPECT_EQ(pool->counters().event_memory_bytes, 0u);
  const Replay replay = pool->replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 2u);
  EXPECT_EQ(replay.events[0]->event.event_type, "agent.tool_call");
  EXPECT_EQ(replay.events[0]->event.data, data);
  EXPECT_EQ(replay.events[1]->event.data, "");
}

TEST_F(EventMemoryTest, ARunningSessionLetsDurableEventsGoAndFollowersReadThemBack) {
  StateDir dir;
  auto store = std::make_shared<store::SqliteStore>(dir.database(), store::Durability::normal);
  auto pool = open_pool(store);
  const std::string id = pool->open("w").session.session_id;
  constexpr int kEvents = 100;  // retention keeps the newest 64, about 2 MiB with encodings
  for (int e = 1; e <= kEvents; ++e) {
    pool->append_progress(id, message_of(0, e));
    if (e % 10 == 0)
      store->flush();
  }
  store->flush();
  EXPECT_LE(pool->counters().event_memory_bytes, kBudget + 3 * kEventBytes);
  std::vector<std::string> newest;
  for (int e = kEvents - 63; e <= kEvents; ++e)
    newest.push_back(message_of(0, e));
  const Replay replay = pool->replay(id, std::nullopt, 1000);
  EXPECT_EQ(messages(replay.events), newest);
  EXPECT_EQ(replay.first_retained_sequence_id, static_cast<std::uint64_t>(kEvents - 63));
  // A follower behind what memory holds is told to read back; one that is not, is served.
  EXPECT_TRUE(pool->events_after(id, kEvents - 60, 10).in_store);
  const FollowUpdate live = pool->events_after(id, kEvents - 1, 10);
  EXPECT_FALSE(live.in_store);
  EXPECT_EQ(messages(live.events), std::vector<std::string>{message_of(0, kEvents)});
  // A cursor older than retention still gets the gap, from the store's oldest event.
  EXPECT_TRUE(pool->events_after(id, 1, 10).events_lost);
  const Replay resumed = pool->replay(id, 1, 1);
  EXPECT_EQ(resumed.first_retained_sequence_id, static_cast<std::uint64_t>(kEvents - 63));
  EXPECT_EQ(messages(resumed.events), std::vector<std::string>{message_of(0, kEvents - 63)});
}

TEST_F(EventMemoryTest, WithoutAStoreToReadBackEndedEventsAreDroppedAndAppendsRefused) {
  auto store = std::make_shared<store::MemoryStore>();
  auto pool = open_pool(store);
  const std::string ended = pool->open("ended").session.session_id;
  for (int e = 1; e <= 20; ++e)
    pool->append_progress(ended, message_of(1, e));
  pool->close(ended);
  const std::string running = pool->open("running").session.session_id;
  std::optional<core::ErrorCode> refused;
  for (int e = 1; e <= 64 && !refused; ++e) {
    try {
      pool->append_progress(running, message_of(2, e));
    } catch (const core::Error& error) {
      refused = error.code();
    }
  }
  EXPECT_EQ(refused, core::ErrorCode::event_memory_full);
  EXPECT_EQ(pool->counters().appends_refused_for_memory, 1u);
  EXPECT_LE(pool->counters().event_memory_bytes, kBudget);
  // The ended session's events went first; a reader is told they are gone (a gap).
  const Replay replay = pool->replay(ended, 0, 100);
  EXPECT_TRUE(replay.events.empty());
  EXPECT_EQ(replay.first_retained_sequence_id, 21u);
  EXPECT_EQ(replay.last_sequence_id, 20u);
  // Nothing acknowledged of the running session was dropped.
  const Replay kept = pool->replay(running, 0, 100);
  ASSERT_FALSE(kept.events.empty());
  EXPECT_EQ(kept.events.front()->event.sequence_id, 1u);
}

}  // namespace
}  // namespace tau::bridge
