// The session service's contract: every rule the gateway relies on, run against both
// implementations, SessionPool (over its in-memory store) and RedisSessionPool (on a real
// redis-server, started once per test process on a free loopback port; each pool gets key
// prefixes of its own, so pools never see each other's sessions).
//
// Where the two legitimately differ, the test says so in a comment and checks each side's own
// behaviour (`is_redis()`); the differences, in short:
// - Follow-ups and followers are told through RedisSessionPool's feed, from its own thread, a
//   moment after the call that made the change: its tests wait for what they expect, and
//   exact notification counts are SessionPool's alone.
// - RedisSessionPool serves `events_after` only to sessions followed on it (from the feed's
//   window of them); SessionPool answers it for any session.
// - SessionPool lets go of an ended session's followers (and does not register followers of a
//   session that has ended); RedisSessionPool keeps them until they unfollow, as its window
//   of the session lives as long as its followers.
// - RedisSessionPool asks for a new session id at every open (the script decides, atomically,
//   whether one is needed); SessionPool only when it creates a session.
// - RedisSessionPool's end listener hears only of sessions whose worker runs in this gateway
//   (opened `with_worker`); SessionPool's of every session.
// - A replay from SessionPool shares its retained events with every other reader; each Redis
//   replay reads Redis anew.
// - SessionPool counts a session as reaped whichever call timed it out; RedisSessionPool only
//   when `reap` did.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "bridge/recording_follower.h"
#include "bridge/session_pool.h"
#include "bridge/session_service.h"
#include "redis/redis_session_pool.h"
#include "support/manual_clock.h"
#include "support/pool_fixtures.h"
#include "support/redis_server.h"

namespace tau::bridge {
namespace {

using namespace tau::core;  // the session vocabulary the pools speak
using test::ManualClock;
using test::RecordingFollower;
using IdGenerator = std::function<std::string()>;
using Ids = std::vector<std::uint64_t>;

constexpr std::int64_t kStartMs = 1'700'000'000'000;
constexpr std::int64_t kTimeoutMs = test::kPoolTimeoutMs;
constexpr std::uint64_t kMaxCursor = UINT64_MAX;

enum class Kind { memory, redis };

using test::SequentialIds;

bridge::PoolLimits test_limits() {
  return test::test_pool_limits();
}

std::string encode(const SessionEvent& event) {
  return "<" + std::to_string(event.sequence_id) + ":" + event.message + ">";
}

// Runs `call` and returns the Error code it threw, or nullopt if it threw nothing.
template <class Call>
std::optional<ErrorCode> error_of(Call&& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.code();
  }
  return std::nullopt;
}

Ids sequence_ids(const std::vector<SharedEvent>& events) {
  Ids ids;
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

// Waits until `condition` holds: a moment after a change for RedisSessionPool, whose feed
// delivers it from a thread of its own; at once for SessionPool. The deadline bounds a hang.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// One redis-server for the whole test process, started on first use.
test::RedisServer& shared_redis() {
  static test::RedisServer server;
  return server;
}

class ContractTest : public ::testing::Test {
 protected:
  // spdlog's registry is made on first use; the Redis pools' threads log, so make it here first
  // (the library is not instrumented, so ThreadSanitizer cannot see its own guard).
  ContractTest() { spdlog::default_logger(); }

  virtual Kind kind() const = 0;
  bool is_redis() const { return kind() == Kind::redis; }

  std::unique_ptr<SessionService> make_pool(PoolLimits limits = test_limits()) {
    return make_pool_with_ids(limits, ids_.as_generator());
  }
  // `ids` null: the implementation's own random ids.
  std::unique_ptr<SessionService> make_pool_with_ids(PoolLimits limits, IdGenerator ids) {
    if (!is_redis())
      return std::make_unique<SessionPool>(limits, clock_.as_clock(), std::move(ids), encode);
    static std::atomic<int> pools{0};
    redis::RedisClient::Options options;
    options.connect_timeout = std::chrono::milliseconds(500);
    auto script = std::make_shared<redis::RedisScript>(std::make_shared<redis::RedisClient>(
        std::get<redis::RedisAddress>(redis::parse_redis_url(shared_redis().url())), options));
    redis::RedisPoolSettings settings;
    settings.prefix =
        "tau:contract:" + std::to_string(::getpid()) + ":" + std::to_string(++pools) + ":";
    auto pool = std::make_unique<redis::RedisSessionPool>(
        script, settings, limits, clock_.as_clock(), encode, std::move(ids));
    // The pool returns once its feed has subscribed, so following works at once.
    EXPECT_TRUE(pool->feed_connected()) << "the pool returned before its feed subscribed";
    return pool;
  }

  ManualClock clock_{kStartMs};
  SequentialIds ids_;
};

std::string kind_name(Kind kind) {
  return kind == Kind::redis ? "RedisSessionPool" : "SessionPool";
}

class SessionServiceContract : public ContractTest, public ::testing::WithParamInterface<Kind> {
 protected:
  Kind kind() const override { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Pools, SessionServiceContract,
                         ::testing::Values(Kind::memory, Kind::redis),
                         [](const auto& info) { return kind_name(info.param); });

// --- open and reuse ---------------------------------------------------------------------------

TEST_P(SessionServiceContract, OpenStartsRunningSessionWithTrimmedWorkspaceId) {
  auto pool = make_pool();

  const SessionSnapshot session = pool->open(" \t ws-1 \r\n", false).session;

  EXPECT_EQ(session.session_id, "session-1");
  EXPECT_EQ(session.workspace_id, "ws-1");
  EXPECT_EQ(session.status, SessionStatus::running);
  EXPECT_EQ(session.started_unix_ms, kStartMs);
  EXPECT_EQ(session.last_activity_unix_ms, kStartMs);
  EXPECT_EQ(session.queued_followups, 0u);
  EXPECT_EQ(pool->runtime().active_sessions, 1u);
}

TEST_P(SessionServiceContract, OpenRejectsEmptyOrWhitespaceWorkspaceId) {
  auto pool = make_pool();

  for (const char* workspace : {"", " ", "\t\r\n\f\v "}) {
    SCOPED_TRACE(testing::Message() << "workspace_id=[" << workspace << "]");
    EXPECT_EQ(error_of([&] { pool->open(workspace, false); }), ErrorCode::invalid_workspace_id);
  }
  EXPECT_EQ(pool->runtime().active_sessions, 0u);
  EXPECT_EQ(ids_.calls(), 0);
}

TEST_P(SessionServiceContract, OpenReturnsTheRunningSessionOfTheSameWorkspace) {
  auto pool = make_pool();
  const OpenResult first = pool->open("ws-1", false);
  clock_.advance(250);

  const OpenResult again = pool->open("  ws-1  ", false);

  EXPECT_TRUE(first.created);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.session.session_id, first.session.session_id);
  EXPECT_EQ(again.session.workspace_id, "ws-1");
  EXPECT_EQ(again.session.started_unix_ms, kStartMs);
  EXPECT_EQ(again.session.last_activity_unix_ms, kStartMs + 250);
  // Redis asks for an id at every open; SessionPool only when it creates a session.
  EXPECT_EQ(ids_.calls(), is_redis() ? 2 : 1);
  EXPECT_EQ(pool->runtime().active_sessions, 1u);
}

TEST_P(SessionServiceContract, DifferentWorkspacesGetDifferentSessions) {
  auto pool = make_pool();

  const SessionSnapshot a = pool->open("ws-a", false).session;
  const SessionSnapshot b = pool->open("ws-b", false).session;

  EXPECT_NE(a.session_id, b.session_id);
  EXPECT_EQ(a.workspace_id, "ws-a");
  EXPECT_EQ(b.workspace_id, "ws-b");
  EXPECT_EQ(pool->runtime().active_sessions, 2u);
}

TEST_P(SessionServiceContract, WorkspaceIdsAreCaseSensitive) {
  auto pool = make_pool();

  EXPECT_NE(pool->open("WS", false).session.session_id, pool->open("ws", false).session.session_id);
}

TEST_P(SessionServiceContract, UsesInjectedIdGeneratorAndSkipsIdsAlreadyTaken) {
  std::vector<std::string> handed_out{"dup", "dup", "unique"};
  std::size_t next = 0;
  auto pool = make_pool_with_ids(test_limits(), [&] { return handed_out.at(next++); });

  EXPECT_EQ(pool->open("ws-1", false).session.session_id, "dup");
  EXPECT_EQ(pool->open("ws-2", false).session.session_id, "unique");
  EXPECT_EQ(next, 3u);
  EXPECT_EQ(pool->get("dup").workspace_id, "ws-1");
}

TEST_P(SessionServiceContract, DefaultIdGeneratorGivesUnguessableIds) {
  auto pool = make_pool_with_ids(test_limits(), nullptr);

  const std::string a = pool->open("ws-1", false).session.session_id;
  const std::string b = pool->open("ws-2", false).session.session_id;

  for (const std::string& id : {a, b}) {
    ASSERT_EQ(id.size(), 4u + 32u) << id;
    EXPECT_EQ(id.substr(0, 4), "eca_");
    EXPECT_TRUE(std::all_of(id.begin() + 4, id.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    })) << id;
  }
  EXPECT_NE(a, b);
}

TEST_P(SessionServiceContract, DiscardRemovesAJustCreatedSessionEntirely) {
  auto pool = make_pool();
  const std::string id = pool->open("w", true).session.session_id;

  pool->discard(id);

  EXPECT_EQ(error_of([&] { pool->get(id); }), ErrorCode::session_not_found);
  EXPECT_EQ(pool->runtime().active_sessions, 0u);
  EXPECT_TRUE(pool->open("w", false).created);
  pool->discard("no-such-session");  // harmless
}

// --- terminal states --------------------------------------------------------------------------

enum class Ending { closed, timed_out, completed, failed };

std::string ending_name(Ending ending) {
  switch (ending) {
    case Ending::closed:
      return "Closed";
    case Ending::timed_out:
      return "TimedOut";
    case Ending::completed:
      return "Completed";
    case Ending::failed:
      return "Failed";
  }
  return "Unknown";
}

SessionStatus status_after(Ending ending) {
  switch (ending) {
    case Ending::closed:
      return SessionStatus::closed;
    case Ending::timed_out:
      return SessionStatus::timed_out;
    case Ending::completed:
      return SessionStatus::completed;
    case Ending::failed:
      return SessionStatus::failed;
  }
  return SessionStatus::running;
}

class SessionServiceEndingContract
    : public ContractTest,
      public ::testing::WithParamInterface<std::tuple<Kind, Ending>> {
 protected:
  Kind kind() const override { return std::get<0>(GetParam()); }
  SessionStatus expected_status() const { return status_after(std::get<1>(GetParam())); }

  // Ends the session the way the parameter says.
  void end(SessionService& pool, const std::string& session_id) {
    switch (std::get<1>(GetParam())) {
      case Ending::closed:
        pool.close(session_id);
        break;
      case Ending::timed_out: {
        clock_.advance(kTimeoutMs + 1);
        const ReapResult result = pool.reap_now();
        ASSERT_EQ(result.reaped.size(), 1u);
        ASSERT_EQ(result.reaped[0].session_id, session_id);
        break;
      }
      case Ending::completed:
        pool.end_session(session_id, SessionStatus::completed);
        break;
      case Ending::failed:
        pool.end_session(session_id, SessionStatus::failed);
        break;
    }
  }
};

INSTANTIATE_TEST_SUITE_P(Pools, SessionServiceEndingContract,
                         ::testing::Combine(::testing::Values(Kind::memory, Kind::redis),
                                            ::testing::Values(Ending::closed, Ending::timed_out,
                                                              Ending::completed, Ending::failed)),
                         [](const auto& info) {
                           return kind_name(std::get<0>(info.param)) + "_" +
                                  ending_name(std::get<1>(info.param));
                         });

TEST_P(SessionServiceEndingContract, ReopeningGivesAFreshSessionAndTheOldOneStaysInspectable) {
  auto pool = make_pool();
  const SessionSnapshot old_session = pool->open("ws-1", false).session;
  pool->append_progress(old_session.session_id, "working");
  end(*pool, old_session.session_id);
  EXPECT_EQ(pool->runtime().active_sessions, 0u);

  const SessionSnapshot fresh = pool->open("ws-1", false).session;

  EXPECT_NE(fresh.session_id, old_session.session_id);
  EXPECT_EQ(fresh.status, SessionStatus::running);
  EXPECT_EQ(fresh.workspace_id, "ws-1");
  EXPECT_EQ(pool->runtime().active_sessions, 1u);

  const SessionSnapshot old_now = pool->get(old_session.session_id);
  EXPECT_EQ(old_now.status, expected_status());
  EXPECT_EQ(old_now.workspace_id, "ws-1");
  const Replay old_events = pool->replay(old_session.session_id, std::nullopt, 100);
  EXPECT_EQ(old_events.session.status, expected_status());
  EXPECT_EQ(messages(old_events.events), std::vector<std::string>{"working"});
  // The fresh session has its own, empty log.
  EXPECT_TRUE(pool->replay(fresh.session_id, std::nullopt, 100).events.empty());
}

TEST_P(SessionServiceEndingContract, EndedSessionRefusesProgressAndFollowups) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  end(*pool, id);

  EXPECT_EQ(error_of([&] { pool->append_progress(id, "late"); }), ErrorCode::session_not_running);
  EXPECT_EQ(error_of([&] { pool->append_followup(id, "late"); }), ErrorCode::session_not_running);
  EXPECT_TRUE(pool->replay(id, std::nullopt, 100).events.empty());
  EXPECT_EQ(pool->get(id).queued_followups, 0u);
}

TEST_P(SessionServiceEndingContract, EndedSessionStillDrainsItsQueuedFollowups) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  pool->append_followup(id, "first");
  pool->append_followup(id, "second");
  end(*pool, id);
  const SessionSnapshot before = pool->get(id);

  const DrainResult drained = pool->drain_followups(id, 10);

  EXPECT_EQ(drained.followups, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(drained.session.status, expected_status());
  EXPECT_EQ(drained.session.queued_followups, 0u);
  EXPECT_EQ(drained.session.last_activity_unix_ms, before.last_activity_unix_ms);
}

TEST_P(SessionServiceEndingContract, FirstTerminalStatusSticks) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  end(*pool, id);

  EXPECT_EQ(pool->close(id).session.status, expected_status());
  EXPECT_EQ(pool->end_session(id, SessionStatus::failed).session.status, expected_status());
  EXPECT_EQ(pool->end_session(id, SessionStatus::completed).session.status, expected_status());
  EXPECT_EQ(pool->get(id).status, expected_status());
}

TEST_P(SessionServiceContract, EndSessionWithRunningStatusChangesNothing) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  EXPECT_EQ(pool->end_session(id, SessionStatus::running).session.status, SessionStatus::running);
  EXPECT_EQ(pool->runtime().active_sessions, 1u);
  EXPECT_EQ(pool->open("ws-1", false).session.session_id, id);
  EXPECT_EQ(pool->counters().sessions_by_status[status_index(SessionStatus::running)], 1u);
}

TEST_P(SessionServiceContract, CloseReturnsClosedSnapshotStampedWithCloseTime) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  clock_.advance(40);

  const SessionSnapshot closed = pool->close(id).session;

  EXPECT_EQ(closed.session_id, id);
  EXPECT_EQ(closed.status, SessionStatus::closed);
  EXPECT_EQ(closed.last_activity_unix_ms, kStartMs + 40);
}

// --- unknown ids and invalid messages ---------------------------------------------------------

TEST_P(SessionServiceContract, UnknownSessionIdIsNotFoundEverywhere) {
  auto pool = make_pool();
  pool->open("ws-1", false);
  const std::string unknown = "session-404";

  EXPECT_EQ(error_of([&] { pool->get(unknown); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->append_progress(unknown, "x"); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->append_followup(unknown, "x"); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->append_event(unknown, "t", "x"); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->drain_followups(unknown, 1); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->replay(unknown, std::nullopt, 1); }),
            ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->close(unknown); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { pool->end_session(unknown, SessionStatus::failed); }),
            ErrorCode::session_not_found);
  // A workspace id is not a session id.
  EXPECT_EQ(error_of([&] { pool->get("ws-1"); }), ErrorCode::session_not_found);
}

TEST_P(SessionServiceContract, BlankMessagesAreRejectedAndOthersStoredTrimmed) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  EXPECT_EQ(error_of([&] { pool->append_progress(id, " \n\t"); }), ErrorCode::invalid_message);
  EXPECT_EQ(error_of([&] { pool->append_followup(id, ""); }), ErrorCode::invalid_message);
  EXPECT_EQ(pool->append_progress(id, "  step one\n").event.message, "step one");
  EXPECT_EQ(pool->append_followup(id, "\tdo this ").event.message, "do this");
  EXPECT_EQ(pool->drain_followups(id, 10).followups, std::vector<std::string>{"do this"});
  // Rejected messages used no sequence ids.
  EXPECT_EQ(sequence_ids(pool->replay(id, std::nullopt, 10).events), (Ids{1, 2}));
}

TEST_P(SessionServiceContract, MessagesKeepInnerLineBreaks) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  EXPECT_EQ(pool->append_progress(id, "line 1\nline 2\r\nline 3").event.message,
            "line 1\nline 2\r\nline 3");
  EXPECT_EQ(messages(pool->replay(id, std::nullopt, 10).events),
            std::vector<std::string>{"line 1\nline 2\r\nline 3"});
}

// --- follow-up queue --------------------------------------------------------------------------

TEST_P(SessionServiceContract, DrainTakesFollowupsOldestFirstUpToTheLimit) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  for (const char* message : {"f1", "f2", "f3", "f4", "f5"})
    pool->append_followup(id, message);
  EXPECT_EQ(pool->get(id).queued_followups, 5u);

  const DrainResult first = pool->drain_followups(id, 2);
  EXPECT_EQ(first.followups, (std::vector<std::string>{"f1", "f2"}));
  EXPECT_EQ(first.session.queued_followups, 3u);
  EXPECT_EQ(pool->get(id).queued_followups, 3u);

  const DrainResult rest = pool->drain_followups(id, 100);
  EXPECT_EQ(rest.followups, (std::vector<std::string>{"f3", "f4", "f5"}));
  EXPECT_EQ(rest.session.queued_followups, 0u);

  const DrainResult empty = pool->drain_followups(id, 100);
  EXPECT_TRUE(empty.followups.empty());
  EXPECT_EQ(empty.session.queued_followups, 0u);
}

TEST_P(SessionServiceContract, DrainWithZeroLimitTakesNothing) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  pool->append_followup(id, "f1");

  const DrainResult drained = pool->drain_followups(id, 0);

  EXPECT_TRUE(drained.followups.empty());
  EXPECT_EQ(drained.session.queued_followups, 1u);
}

TEST_P(SessionServiceContract, FollowupsInterleavedWithDrainsKeepFifoOrder) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  pool->append_followup(id, "a");
  pool->append_followup(id, "b");
  EXPECT_EQ(pool->drain_followups(id, 1).followups, std::vector<std::string>{"a"});
  pool->append_followup(id, "c");

  EXPECT_EQ(pool->drain_followups(id, 5).followups, (std::vector<std::string>{"b", "c"}));
}

TEST_P(SessionServiceContract, ProgressEventsAreNotQueuedAsFollowups) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  const AppendResult progress = pool->append_progress(id, "p");
  const AppendResult followup = pool->append_followup(id, "f");

  EXPECT_EQ(progress.session.queued_followups, 0u);
  EXPECT_EQ(followup.session.queued_followups, 1u);
  EXPECT_EQ(pool->drain_followups(id, 10).followups, std::vector<std::string>{"f"});
}

TEST_P(SessionServiceContract, DrainingDoesNotRemoveFollowupEventsFromTheLog) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  pool->append_followup(id, "f1");
  pool->drain_followups(id, 10);

  const Replay replay = pool->replay(id, std::nullopt, 10);

  ASSERT_EQ(replay.events.size(), 1u);
  EXPECT_EQ(replay.events[0]->event.event_type, event_types::followup);
  EXPECT_EQ(replay.events[0]->event.message, "f1");
}

// --- event log --------------------------------------------------------------------------------

TEST_P(SessionServiceContract, SequenceIdsCountWithoutGapsAcrossProgressAndFollowups) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  const AppendResult first = pool->append_progress(id, "p1");
  clock_.advance(5);
  const AppendResult second = pool->append_followup(id, "f1");
  clock_.advance(5);
  const AppendResult third = pool->append_progress(id, "p2");

  EXPECT_EQ(first.event.sequence_id, 1u);
  EXPECT_EQ(second.event.sequence_id, 2u);
  EXPECT_EQ(third.event.sequence_id, 3u);
  EXPECT_EQ(first.event.event_type, event_types::progress);
  EXPECT_EQ(second.event.event_type, event_types::followup);
  EXPECT_EQ(third.event.event_type, event_types::progress);
  EXPECT_EQ(first.event.timestamp_unix_ms, kStartMs);
  EXPECT_EQ(third.event.timestamp_unix_ms, kStartMs + 10);
  EXPECT_EQ(third.session.last_activity_unix_ms, kStartMs + 10);

  const Replay replay = pool->replay(id, std::nullopt, 10);
  EXPECT_EQ(sequence_ids(replay.events), (Ids{1, 2, 3}));
  EXPECT_EQ(messages(replay.events), (std::vector<std::string>{"p1", "f1", "p2"}));
  EXPECT_EQ(replay.events[2]->event.timestamp_unix_ms, kStartMs + 10);
}

TEST_P(SessionServiceContract, SequenceIdsArePerSession) {
  auto pool = make_pool();
  const std::string a = pool->open("ws-a", false).session.session_id;
  const std::string b = pool->open("ws-b", false).session.session_id;

  pool->append_progress(a, "a1");
  pool->append_progress(a, "a2");

  EXPECT_EQ(pool->append_progress(b, "b1").event.sequence_id, 1u);
  EXPECT_EQ(pool->append_progress(a, "a3").event.sequence_id, 3u);
}

TEST_P(SessionServiceContract, ReplayCursorAndLimit) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  for (const char* message : {"e1", "e2", "e3", "e4", "e5"})
    pool->append_progress(id, message);

  EXPECT_EQ(sequence_ids(pool->replay(id, std::nullopt, 100).events), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool->replay(id, 0, 100).events), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool->replay(id, 2, 100).events), (Ids{3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool->replay(id, 2, 2).events), (Ids{3, 4}));
  EXPECT_EQ(sequence_ids(pool->replay(id, std::nullopt, 3).events), (Ids{1, 2, 3}));
  EXPECT_EQ(sequence_ids(pool->replay(id, 4, 100).events), (Ids{5}));
  EXPECT_TRUE(pool->replay(id, 5, 100).events.empty());
  EXPECT_TRUE(pool->replay(id, 6, 100).events.empty());
  // The largest cursor is valid: nothing comes after it.
  EXPECT_TRUE(pool->replay(id, kMaxCursor, 100).events.empty());
  EXPECT_TRUE(pool->replay(id, kMaxCursor - 1, 100).events.empty());
  EXPECT_TRUE(pool->replay(id, std::nullopt, 0).events.empty());

  const Replay replay = pool->replay(id, 3, 100);
  EXPECT_EQ(replay.session.session_id, id);
  EXPECT_EQ(replay.session.status, SessionStatus::running);
  EXPECT_EQ(messages(replay.events), (std::vector<std::string>{"e4", "e5"}));
  EXPECT_EQ(replay.first_retained_sequence_id, 1u);
  EXPECT_EQ(replay.last_sequence_id, 5u);
}

TEST_P(SessionServiceContract, ReplayOfSessionWithoutEventsIsEmpty) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  const Replay replay = pool->replay(id, std::nullopt, 100);
  EXPECT_TRUE(replay.events.empty());
  EXPECT_EQ(replay.first_retained_sequence_id, 0u);
  EXPECT_EQ(replay.last_sequence_id, 0u);
  EXPECT_TRUE(pool->replay(id, 0, 100).events.empty());
}

TEST_P(SessionServiceContract, RetentionDropsOldestEventsButSequenceIdsKeepCounting) {
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 3;
  auto pool = make_pool(limits);
  const std::string id = pool->open("ws-1", false).session.session_id;
  for (const char* message : {"e1", "e2", "e3", "e4", "e5"})
    pool->append_progress(id, message);

  EXPECT_EQ(sequence_ids(pool->replay(id, std::nullopt, 100).events), (Ids{3, 4, 5}));
  EXPECT_EQ(messages(pool->replay(id, std::nullopt, 100).events),
            (std::vector<std::string>{"e3", "e4", "e5"}));
  // A cursor before the retained window gets what is still there.
  EXPECT_EQ(sequence_ids(pool->replay(id, 1, 100).events), (Ids{3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool->replay(id, 3, 100).events), (Ids{4, 5}));

  EXPECT_EQ(pool->append_followup(id, "e6").event.sequence_id, 6u);
  EXPECT_EQ(sequence_ids(pool->replay(id, std::nullopt, 100).events), (Ids{4, 5, 6}));
}

TEST_P(SessionServiceContract, RetentionDoesNotDropQueuedFollowups) {
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 1;
  auto pool = make_pool(limits);
  const std::string id = pool->open("ws-1", false).session.session_id;
  pool->append_followup(id, "f1");
  pool->append_followup(id, "f2");
  pool->append_progress(id, "p");

  EXPECT_EQ(pool->replay(id, std::nullopt, 100).events.size(), 1u);
  EXPECT_EQ(pool->drain_followups(id, 10).followups, (std::vector<std::string>{"f1", "f2"}));
}

TEST_P(SessionServiceContract, EventsAreEncodedOnceWithRunningByteTotals) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_progress(id, "a");
  pool->append_followup(id, "bc");

  const Replay first = pool->replay(id, std::nullopt, 10);
  const Replay second = pool->replay(id, std::nullopt, 10);

  ASSERT_EQ(first.events.size(), 2u);
  EXPECT_EQ(first.events[0]->encoded, "<1:a>");
  EXPECT_EQ(first.events[1]->encoded, "<2:bc>");
  EXPECT_EQ(first.events[0]->encoded_bytes_through, 5u);
  EXPECT_EQ(first.events[1]->encoded_bytes_through, 11u);
  EXPECT_EQ(first.encoded_bytes_total, 11u);
  ASSERT_EQ(second.events.size(), 2u);
  EXPECT_EQ(second.events[1]->encoded, "<2:bc>");
  // SessionPool's readers share the retained event itself; each Redis replay reads Redis anew.
  if (!is_redis()) {
    EXPECT_EQ(first.events[1].get(), second.events[1].get());
  }
}

TEST_P(SessionServiceContract, AppendEventRecordsAnyTypeEvenAfterTheSessionEnded) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  EXPECT_EQ(pool->append_event(id, "subprocess.stdout", "  kept as is ").event.message,
            "  kept as is ");
  pool->close(id);
  const std::int64_t closed_activity = pool->get(id).last_activity_unix_ms;
  clock_.advance(50);

  const AppendResult exit = pool->append_event(id, "subprocess.exit", "exit code 0");

  EXPECT_EQ(exit.event.sequence_id, 2u);
  EXPECT_EQ(exit.event.event_type, "subprocess.exit");
  EXPECT_EQ(exit.event.timestamp_unix_ms, kStartMs + 50);
  EXPECT_EQ(exit.session.status, SessionStatus::closed);
  EXPECT_EQ(exit.session.last_activity_unix_ms, closed_activity);
  EXPECT_EQ(messages(pool->replay(id, 1, 10).events), std::vector<std::string>{"exit code 0"});
}

TEST_P(SessionServiceContract, AppendEventsAppendsInOrderWhateverTheState) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_events(id, {{"subprocess.stdout", "one"}, {"subprocess.stderr", "two"}});
  pool->close(id);
  pool->append_events(id, {{"subprocess.exit", "three"}});
  pool->append_events(id, {});

  const Replay replay = pool->replay(id, std::nullopt, 10);
  EXPECT_EQ(sequence_ids(replay.events), (Ids{1, 2, 3}));
  EXPECT_EQ(messages(replay.events), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(replay.events[1]->event.event_type, "subprocess.stderr");
}

// Typed events carry a structured payload (a serialized JSON object) that every reader gets back
// as it was given: replays, the live feed a follower reads, a batch. Events without data have
// none.
TEST_P(SessionServiceContract, AnEventsDataIsReplayedAndFollowedWithIt) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  const std::string data = R"({"tool":"edit","path":"a \"b\"/c.cpp","lines":[1,2],"ok":true})";
  const AppendResult typed = pool->append_event(id, "agent.tool_call", "edited c.cpp", data);
  EXPECT_EQ(typed.event.data, data);
  EXPECT_EQ(pool->append_event(id, "subprocess.stdout", "no data").event.data, "");
  pool->append_events(id, {{"agent.message", "batched", R"({"n":1})"}, {"t", "plain"}});

  const Replay replay = pool->replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 4u);
  EXPECT_EQ(replay.events[0]->event.event_type, "agent.tool_call");
  EXPECT_EQ(replay.events[0]->event.data, data);
  EXPECT_EQ(replay.events[1]->event.data, "");
  EXPECT_EQ(replay.events[2]->event.data, R"({"n":1})");
  EXPECT_EQ(replay.events[3]->event.data, "");

  auto follower = std::make_shared<RecordingFollower>();
  const FollowStart start = pool->follow(id, 3, 10, follower);
  ASSERT_EQ(start.replay.events.size(), 1u);
  EXPECT_EQ(start.replay.events[0]->event.data, "");
  pool->append_event(id, "agent.tool_result", "live", R"({"exit":0})");
  pool->append_progress(id, "live, no data");
  FollowUpdate update;
  ASSERT_TRUE(follower->wait_until([&] {
    update = pool->events_after(id, start.live_after_sequence_id, 10);
    return update.events.size() == 2;
  }));
  EXPECT_EQ(update.events[0]->event.event_type, "agent.tool_result");
  EXPECT_EQ(update.events[0]->event.data, R"({"exit":0})");
  EXPECT_EQ(update.events[1]->event.data, "");
  pool->unfollow(id, follower.get());
  EXPECT_EQ(pool->replay(id, 4, 10).events[0]->event.data, R"({"exit":0})");
}

// --- inactivity timeout -----------------------------------------------------------------------

TEST_P(SessionServiceContract, ReapTimesOutOnlySessionsIdleStrictlyLongerThanTheTimeout) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;

  const ReapResult at_timeout = pool->reap(kStartMs + kTimeoutMs);
  EXPECT_TRUE(at_timeout.reaped.empty());
  EXPECT_EQ(at_timeout.runtime.active_sessions, 1u);
  EXPECT_EQ(pool->get(id).status, SessionStatus::running);

  const ReapResult past_timeout = pool->reap(kStartMs + kTimeoutMs + 1);
  ASSERT_EQ(past_timeout.reaped.size(), 1u);
  EXPECT_EQ(past_timeout.reaped[0].session_id, id);
  EXPECT_EQ(past_timeout.reaped[0].workspace_id, "ws-1");
  EXPECT_EQ(past_timeout.reaped[0].status, SessionStatus::timed_out);
  EXPECT_EQ(past_timeout.runtime.active_sessions, 0u);
  EXPECT_EQ(past_timeout.runtime.inactivity_timeout_ms, kTimeoutMs);
  EXPECT_EQ(past_timeout.runtime.max_active_sessions, 4u);
  EXPECT_EQ(past_timeout.runtime.max_events_per_session, 100u);
  EXPECT_EQ(pool->get(id).status, SessionStatus::timed_out);

  // Already ended: a later reap does not report it again.
  EXPECT_TRUE(pool->reap(kStartMs + 10 * kTimeoutMs).reaped.empty());
}

TEST_P(SessionServiceContract, ReapNowUsesTheInjectedClock) {
  auto pool = make_pool();
  pool->open("ws-1", false);

  clock_.set(kStartMs + kTimeoutMs);
  EXPECT_TRUE(pool->reap_now().reaped.empty());
  clock_.set(kStartMs + kTimeoutMs + 1);
  EXPECT_EQ(pool->reap_now().reaped.size(), 1u);
  EXPECT_EQ(pool->now(), kStartMs + kTimeoutMs + 1);
}

TEST_P(SessionServiceContract, ReapReportsStaleSessionsOldestActivityFirstAndSparesFreshOnes) {
  auto pool = make_pool();
  const std::string a = pool->open("ws-a", false).session.session_id;
  clock_.advance(10);
  const std::string b = pool->open("ws-b", false).session.session_id;
  clock_.advance(10);
  const std::string c = pool->open("ws-c", false).session.session_id;
  clock_.advance(500);
  pool->append_progress(a, "a is alive");  // a is now the most recent

  const ReapResult result = pool->reap(kStartMs + 20 + kTimeoutMs + 1);

  ASSERT_EQ(result.reaped.size(), 2u);
  EXPECT_EQ(result.reaped[0].session_id, b);
  EXPECT_EQ(result.reaped[1].session_id, c);
  EXPECT_EQ(result.runtime.active_sessions, 1u);
  EXPECT_EQ(pool->get(a).status, SessionStatus::running);
}

TEST_P(SessionServiceContract, ActivityPostponesTheTimeout) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  clock_.advance(kTimeoutMs);
  pool->append_progress(id, "p");  // idle for exactly the timeout: not yet stale
  clock_.advance(kTimeoutMs);
  pool->append_followup(id, "f");
  clock_.advance(kTimeoutMs);
  pool->drain_followups(id, 1);  // polling the queue counts as activity
  clock_.advance(kTimeoutMs);
  pool->open("ws-1", false);  // so does reopening the running session
  clock_.advance(kTimeoutMs);

  EXPECT_TRUE(pool->reap_now().reaped.empty());
  EXPECT_EQ(pool->get(id).status, SessionStatus::running);
}

TEST_P(SessionServiceContract, GetAndReplayDoNotCountAsActivity) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  clock_.advance(kTimeoutMs);
  pool->get(id);
  pool->replay(id, std::nullopt, 10);
  clock_.advance(1);

  EXPECT_EQ(pool->get(id).status, SessionStatus::timed_out);
}

TEST_P(SessionServiceContract, GetReapsStaleSessionFirst) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  clock_.advance(kTimeoutMs + 1);

  const SessionSnapshot session = pool->get(id);

  EXPECT_EQ(session.status, SessionStatus::timed_out);
  EXPECT_EQ(session.last_activity_unix_ms, kStartMs);
  EXPECT_EQ(pool->runtime().active_sessions, 0u);
}

TEST_P(SessionServiceContract, ProgressAndFollowupReapStaleSessionFirst) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  clock_.advance(kTimeoutMs + 1);

  EXPECT_EQ(error_of([&] { pool->append_progress(id, "too late"); }),
            ErrorCode::session_not_running);
  EXPECT_EQ(error_of([&] { pool->append_followup(id, "too late"); }),
            ErrorCode::session_not_running);
  EXPECT_EQ(pool->get(id).status, SessionStatus::timed_out);
}

TEST_P(SessionServiceContract, OpenReapsStaleSessionFirstAndStartsAFreshOne) {
  auto pool = make_pool();
  const std::string stale = pool->open("ws-1", false).session.session_id;
  clock_.advance(kTimeoutMs + 1);

  const SessionSnapshot fresh = pool->open("ws-1", false).session;

  EXPECT_NE(fresh.session_id, stale);
  EXPECT_EQ(fresh.started_unix_ms, kStartMs + kTimeoutMs + 1);
  EXPECT_EQ(pool->get(stale).status, SessionStatus::timed_out);
  EXPECT_EQ(pool->runtime().active_sessions, 1u);
}

TEST_P(SessionServiceContract, CloseOfStaleSessionReportsTimedOut) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  clock_.advance(kTimeoutMs + 1);

  EXPECT_EQ(pool->close(id).session.status, SessionStatus::timed_out);
}

// --- active session limit ---------------------------------------------------------------------

TEST_P(SessionServiceContract, OpeningBeyondTheLimitFailsButReusingARunningSessionDoesNot) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 2;
  auto pool = make_pool(limits);
  const std::string a = pool->open("ws-a", false).session.session_id;
  pool->open("ws-b", false);

  EXPECT_EQ(error_of([&] { pool->open("ws-c", false); }), ErrorCode::session_limit_reached);
  EXPECT_EQ(pool->open("ws-a", false).session.session_id, a);
  EXPECT_EQ(pool->runtime().active_sessions, 2u);
  // Redis asks for an id at every open, the refused and the reusing ones too.
  EXPECT_EQ(ids_.calls(), is_redis() ? 4 : 2);
}

TEST_P(SessionServiceContract, EndedSessionsFreeTheirSlot) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 2;
  auto pool = make_pool(limits);
  const std::string a = pool->open("ws-a", false).session.session_id;
  const std::string b = pool->open("ws-b", false).session.session_id;

  pool->close(a);
  EXPECT_NO_THROW(pool->open("ws-c", false));
  EXPECT_EQ(error_of([&] { pool->open("ws-d", false); }), ErrorCode::session_limit_reached);

  pool->end_session(b, SessionStatus::completed);
  EXPECT_NO_THROW(pool->open("ws-d", false));
  EXPECT_EQ(pool->runtime().active_sessions, 2u);
}

TEST_P(SessionServiceContract, TimedOutSessionsFreeTheirSlotWhenOpenReapsThem) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 1;
  auto pool = make_pool(limits);
  const std::string a = pool->open("ws-a", false).session.session_id;
  EXPECT_EQ(error_of([&] { pool->open("ws-b", false); }), ErrorCode::session_limit_reached);
  clock_.advance(kTimeoutMs + 1);

  const SessionSnapshot b = pool->open("ws-b", false).session;

  EXPECT_EQ(b.status, SessionStatus::running);
  EXPECT_EQ(pool->get(a).status, SessionStatus::timed_out);
}

// --- concurrency ------------------------------------------------------------------------------

TEST_P(SessionServiceContract, RacingOpensOfOneWorkspaceShareOneSession) {
  // Several rounds, each with a fresh pool, to give a race more than one chance to show (fewer
  // for Redis, where each pool is a client with threads of its own).
  const int rounds = is_redis() ? 10 : 50;
  constexpr int kThreads = 16;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    SequentialIds ids;
    auto pool = make_pool_with_ids(test_limits(), ids.as_generator());
    std::vector<std::string> session_ids(kThreads);
    std::latch start(kThreads);
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
          start.arrive_and_wait();
          session_ids[i] = pool->open("shared-ws", false).session.session_id;
        });
      }
    }

    ASSERT_EQ(std::set<std::string>(session_ids.begin(), session_ids.end()).size(), 1u);
    ASSERT_EQ(pool->runtime().active_sessions, 1u);
    // SessionPool makes one id for the one session; each Redis open offers one, and the first
    // to reach the script names the session.
    if (!is_redis()) {
      ASSERT_EQ(session_ids[0], "session-1");
      ASSERT_EQ(ids.calls(), 1);
    }
  }
}

TEST_P(SessionServiceContract, RacingOpensOfDistinctWorkspacesNeverExceedTheLimit) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 5;
  auto pool = make_pool(limits);
  constexpr int kThreads = 24;
  std::atomic<int> opened{0};
  std::atomic<int> refused{0};
  std::latch start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        try {
          pool->open("ws-" + std::to_string(i), false);
          ++opened;
        } catch (const Error& error) {
          if (error.code() == ErrorCode::session_limit_reached)
            ++refused;
        }
      });
    }
  }

  EXPECT_EQ(opened.load(), 5);
  EXPECT_EQ(refused.load(), kThreads - 5);
  EXPECT_EQ(pool->runtime().active_sessions, 5u);
}

TEST_P(SessionServiceContract, ConcurrentAppendsGetUniqueGaplessSequenceIds) {
  auto pool = make_pool();
  const std::string id = pool->open("ws-1", false).session.session_id;
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 10;
  std::vector<Ids> seen(kThreads);
  std::latch start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kAppendsPerThread; ++i) {
          const AppendResult result =
              (i % 2 == 0) ? pool->append_progress(id, "p") : pool->append_followup(id, "f");
          seen[t].push_back(result.event.sequence_id);
        }
      });
    }
  }

  Ids all;
  for (const auto& ids : seen)
    all.insert(all.end(), ids.begin(), ids.end());
  std::sort(all.begin(), all.end());
  Ids expected(kThreads * kAppendsPerThread);
  for (std::size_t i = 0; i < expected.size(); ++i)
    expected[i] = i + 1;
  EXPECT_EQ(all, expected);
  EXPECT_EQ(sequence_ids(pool->replay(id, std::nullopt, 1000).events), expected);
  EXPECT_EQ(pool->get(id).queued_followups, static_cast<std::size_t>(kThreads * 5));
}

// --- following --------------------------------------------------------------------------------

TEST_P(SessionServiceContract, FollowReplaysAndThenNotifiesOfEachAppend) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_progress(id, "before");
  auto follower = std::make_shared<RecordingFollower>();

  const FollowStart start = pool->follow(id, std::nullopt, 10, follower);

  EXPECT_EQ(sequence_ids(start.replay.events), (Ids{1}));
  EXPECT_EQ(start.replay.last_sequence_id, 1u);
  EXPECT_EQ(start.replay.encoded_bytes_total, std::string("<1:before>").size());
  EXPECT_EQ(start.live_after_sequence_id, 1u);
  // SessionPool has told its follower of nothing yet; Redis's feed may still deliver the
  // append made before the follow (the window skips it, but its follower is told).
  if (!is_redis()) {
    EXPECT_EQ(follower->notifications(), 0);
  }

  pool->append_progress(id, "live");
  FollowUpdate update;
  ASSERT_TRUE(follower->wait_until([&] {
    update = pool->events_after(id, start.live_after_sequence_id, 10);
    return !update.events.empty() &&
           follower->last_total() == std::string("<1:before><2:live>").size();
  }));
  EXPECT_EQ(messages(update.events), (std::vector<std::string>{"live"}));
  EXPECT_EQ(update.events[0]->encoded_bytes_through, follower->last_total());
  EXPECT_FALSE(update.events_lost);
  EXPECT_FALSE(update.finished);
  EXPECT_FALSE(update.feed_lost);
  EXPECT_EQ(update.session.status, SessionStatus::running);
  if (!is_redis()) {
    EXPECT_EQ(follower->notifications(), 1);
  }

  // Once it unfollows it is told nothing more. A second follower shows when the next append
  // has reached the followers (Redis: in the same step as the first would have been told).
  auto witness = std::make_shared<RecordingFollower>();
  pool->follow(id, 2, 10, witness);
  pool->unfollow(id, follower.get());
  const int heard = follower->notifications();
  pool->append_progress(id, "unheard");
  ASSERT_TRUE(witness->wait_until([&] { return !pool->events_after(id, 2, 10).events.empty(); }));
  EXPECT_GE(witness->notifications(), 1);
  EXPECT_EQ(follower->notifications(), heard);
  pool->unfollow(id, witness.get());
}

TEST_P(SessionServiceContract, LiveEventsStartAfterTheNewestEvenWhenTheReplayIsLimited) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  for (int i = 0; i < 5; ++i)
    pool->append_progress(id, "e");
  auto follower = std::make_shared<RecordingFollower>();

  const FollowStart start = pool->follow(id, 1, 2, follower);

  EXPECT_EQ(sequence_ids(start.replay.events), (Ids{2, 3}));
  EXPECT_EQ(start.live_after_sequence_id, 5u);
  // A cursor past the newest replays nothing, and is not lost.
  EXPECT_TRUE(pool->follow(id, kMaxCursor, 10, follower).replay.events.empty());
  EXPECT_FALSE(pool->events_after(id, kMaxCursor, 10).events_lost);
  EXPECT_TRUE(pool->events_after(id, kMaxCursor, 10).events.empty());
  pool->unfollow(id, follower.get());
}

TEST_P(SessionServiceContract, EndingTheSessionNotifiesAndFinishesItsFollowers) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_progress(id, "last");
  auto follower = std::make_shared<RecordingFollower>();
  pool->follow(id, std::nullopt, 10, follower);

  pool->close(id);

  FollowUpdate update;
  ASSERT_TRUE(follower->wait_until([&] {
    update = pool->events_after(id, 0, 10);
    return update.finished;
  }));
  EXPECT_EQ(update.session.status, SessionStatus::closed);
  EXPECT_EQ(messages(update.events), std::vector<std::string>{"last"});
  EXPECT_GE(follower->notifications(), 1);
  // Not finished while an event is still to be given out.
  EXPECT_FALSE(pool->events_after(id, 0, 0).finished);
  EXPECT_TRUE(pool->events_after(id, 1, 10).finished);
  if (is_redis()) {
    // Redis's window of the session lives as long as its followers: they unfollow.
    pool->unfollow(id, follower.get());
  } else {
    // SessionPool tells them once and lets them go: an ended session never changes again.
    EXPECT_EQ(follower->notifications(), 1);
    EXPECT_EQ(follower.use_count(), 1) << "the pool must not keep followers of an ended session";
  }
  EXPECT_EQ(follower.use_count(), 1);
}

TEST_P(SessionServiceContract, ReapingNotifiesFollowersOfTimedOutSessions) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  auto follower = std::make_shared<RecordingFollower>();
  pool->follow(id, std::nullopt, 10, follower);

  pool->reap(clock_.now() + kTimeoutMs + 1);

  EXPECT_TRUE(follower->wait_until([&] {
    return follower->notifications() >= 1 &&
           pool->events_after(id, 0, 10).session.status == SessionStatus::timed_out;
  }));
  EXPECT_TRUE(pool->events_after(id, 0, 10).finished);
  pool->unfollow(id, follower.get());
}

TEST_P(SessionServiceContract, FollowingAnEndedSessionReplaysItAndFinishes) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_progress(id, "only");
  pool->close(id);
  auto follower = std::make_shared<RecordingFollower>();

  const FollowStart start = pool->follow(id, std::nullopt, 10, follower);

  EXPECT_EQ(start.replay.session.status, SessionStatus::closed);
  EXPECT_EQ(messages(start.replay.events), std::vector<std::string>{"only"});
  EXPECT_EQ(start.live_after_sequence_id, 1u);
  const FollowUpdate update = pool->events_after(id, 1, 10);
  EXPECT_TRUE(update.finished);
  EXPECT_TRUE(update.events.empty());
  // SessionPool does not register followers of an ended session (it cannot change); Redis
  // keeps its window, and the follower, until it unfollows.
  if (!is_redis()) {
    EXPECT_EQ(follower.use_count(), 1);
  }
  pool->unfollow(id, follower.get());
  EXPECT_EQ(follower.use_count(), 1);
}

TEST_P(SessionServiceContract, RetentionReportsTheFirstRetainedIdAndLostEvents) {
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 3;
  auto pool = make_pool(limits);
  const std::string id = pool->open("w", false).session.session_id;
  for (int i = 0; i < 6; ++i)
    pool->append_progress(id, "e");

  const Replay replay = pool->replay(id, 1, 10);
  EXPECT_EQ(replay.first_retained_sequence_id, 4u);
  EXPECT_EQ(replay.last_sequence_id, 6u);
  EXPECT_EQ(sequence_ids(replay.events), (Ids{4, 5, 6}));

  // events_after is for followers (Redis answers it from the window of a followed session).
  auto follower = std::make_shared<RecordingFollower>();
  const FollowStart start = pool->follow(id, 1, 10, follower);
  EXPECT_EQ(start.replay.first_retained_sequence_id, 4u);
  EXPECT_EQ(sequence_ids(start.replay.events), (Ids{4, 5, 6}));
  EXPECT_TRUE(pool->events_after(id, 2, 10).events_lost);
  EXPECT_TRUE(pool->events_after(id, 2, 10).events.empty());
  EXPECT_FALSE(pool->events_after(id, 3, 10).events_lost);
  EXPECT_FALSE(pool->events_after(id, 6, 10).events_lost);
  EXPECT_FALSE(pool->events_after(id, kMaxCursor, 10).events_lost);
  EXPECT_EQ(sequence_ids(pool->events_after(id, 3, 2).events), (Ids{4, 5}));
  pool->unfollow(id, follower.get());
}

TEST_P(SessionServiceContract, EventsAfterIsForFollowers) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_progress(id, "e");

  const FollowUpdate update = pool->events_after(id, 0, 10);

  // SessionPool answers for any session; Redis only for sessions followed on it, and otherwise
  // says its feed cannot serve this follower (the stream ends and the client resumes).
  if (is_redis()) {
    EXPECT_TRUE(update.feed_lost);
    EXPECT_TRUE(update.events.empty());
  } else {
    EXPECT_FALSE(update.feed_lost);
    EXPECT_EQ(sequence_ids(update.events), (Ids{1}));
  }
}

// --- end listener -----------------------------------------------------------------------------

TEST_P(SessionServiceContract, EndListenerHearsEveryWayASessionEnds) {
  // Before the pool: Redis's feed thread may call the listener until the pool is gone.
  std::mutex mutex;
  std::vector<std::pair<std::string, SessionStatus>> ended;
  auto pool = make_pool();
  pool->set_end_listener([&](const SessionSnapshot& session) {
    std::lock_guard lock(mutex);
    ended.emplace_back(session.session_id, session.status);
  });
  const auto heard = [&] {
    std::lock_guard lock(mutex);
    return ended;
  };
  // Redis tells only of sessions whose worker runs in this gateway: these have one.
  const std::string closed = pool->open("a", true).session.session_id;
  const std::string completed = pool->open("b", true).session.session_id;
  const std::string timed_out = pool->open("c", true).session.session_id;

  pool->close(closed);
  pool->close(closed);  // already ended: not told twice
  pool->end_session(completed, SessionStatus::completed);
  pool->reap(clock_.now() + kTimeoutMs + 1);

  ASSERT_TRUE(eventually([&] { return heard().size() >= 3; }));
  EXPECT_EQ(heard(), (std::vector<std::pair<std::string, SessionStatus>>{
                         {closed, SessionStatus::closed},
                         {completed, SessionStatus::completed},
                         {timed_out, SessionStatus::timed_out}}));
}

// --- listing and purging ----------------------------------------------------------------------

TEST_P(SessionServiceContract, ListFiltersAndPagesNewestActivityFirst) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 10;
  auto pool = make_pool(limits);
  const std::string a = pool->open("w1", false).session.session_id;  // session-1
  clock_.advance(1);
  const std::string b = pool->open("w2", false).session.session_id;  // session-2
  clock_.advance(1);
  const std::string c = pool->open("w1x", false).session.session_id;  // session-3
  const std::string d = pool->open("w3", false).session.session_id;   // session-4, same time as c
  clock_.advance(1);
  pool->close(b);  // b and a: the newest activity, at the same time
  pool->append_progress(a, "x");

  auto ids_of = [](const ListPage& page) {
    std::vector<std::string> out;
    for (const auto& s : page.sessions)
      out.push_back(s.session_id);
    return out;
  };
  ListQuery all;
  // a and b share the newest activity: the greater id comes first; so do c and d.
  EXPECT_EQ(ids_of(pool->list(all)), (std::vector<std::string>{b, a, d, c}));

  ListQuery running;
  running.status = SessionStatus::running;
  EXPECT_EQ(ids_of(pool->list(running)), (std::vector<std::string>{a, d, c}));
  ListQuery closed;
  closed.status = SessionStatus::closed;
  EXPECT_EQ(ids_of(pool->list(closed)), std::vector<std::string>{b});
  ListQuery workspace;
  workspace.workspace_id = "w1";
  EXPECT_EQ(ids_of(pool->list(workspace)), std::vector<std::string>{a});

  // Pages of two: each starts after the last one's final position, and says whether more follow.
  ListQuery paged;
  paged.limit = 2;
  ListPage first = pool->list(paged);
  EXPECT_EQ(ids_of(first), (std::vector<std::string>{b, a}));
  EXPECT_TRUE(first.more);
  paged.after = ListQuery::Position{first.sessions.back().last_activity_unix_ms,
                                    first.sessions.back().session_id};
  ListPage second = pool->list(paged);
  EXPECT_EQ(ids_of(second), (std::vector<std::string>{d, c}));
  EXPECT_FALSE(second.more);
}

TEST_P(SessionServiceContract, ListShowsTheCurrentStateOfEachSession) {
  auto pool = make_pool();
  const std::string id = pool->open("w", false).session.session_id;
  pool->append_followup(id, "f");
  clock_.advance(7);
  pool->close(id);

  const ListPage page = pool->list(ListQuery{});

  ASSERT_EQ(page.sessions.size(), 1u);
  EXPECT_EQ(page.sessions[0].status, SessionStatus::closed);
  EXPECT_EQ(page.sessions[0].queued_followups, 1u);
  EXPECT_EQ(page.sessions[0].last_activity_unix_ms, kStartMs + 7);
  EXPECT_FALSE(page.more);
}

TEST_P(SessionServiceContract, EndedSessionsArePurgedAfterTheRetention) {
  PoolLimits limits = test_limits();
  limits.session_retention_ms = 1000;
  auto pool = make_pool(limits);
  const std::string old_id = pool->open("a", false).session.session_id;
  const std::string running = pool->open("b", false).session.session_id;
  pool->append_progress(old_id, "x");
  pool->close(old_id);
  clock_.advance(500);
  const std::string recent = pool->open("c", false).session.session_id;
  pool->close(recent);

  EXPECT_EQ(pool->purge_ended(clock_.now() + 500), 0u);  // exactly the retention: kept
  EXPECT_EQ(pool->purge_ended(clock_.now() + 501), 1u);
  EXPECT_EQ(error_of([&] { pool->get(old_id); }), ErrorCode::session_not_found);
  EXPECT_EQ(pool->get(recent).status, SessionStatus::closed);
  // Running sessions are never purged, however old.
  EXPECT_EQ(pool->purge_ended(clock_.now() + 1'000'000), 1u);
  EXPECT_EQ(pool->get(running).status, SessionStatus::running);
  EXPECT_EQ(pool->list(ListQuery{}).sessions.size(), 1u);
}

// --- counters ---------------------------------------------------------------------------------

TEST_P(SessionServiceContract, CountersCountWhatThePoolDid) {
  auto pool = make_pool();
  const std::string a = pool->open("a", false).session.session_id;
  const std::string b = pool->open("b", false).session.session_id;
  pool->open("c", false);
  pool->append_progress(a, "p");
  pool->append_followup(a, "f1");
  pool->append_followup(a, "f2");
  pool->append_event(b, "t", "m");
  pool->drain_followups(a, 1);
  pool->close(b);
  clock_.advance(kTimeoutMs + 1);
  // Through reap: SessionPool counts sessions another call timed out too; Redis only these.
  pool->reap_now();

  const PoolCounters counters = pool->counters();
  EXPECT_EQ(counters.events_appended, 4u);
  EXPECT_EQ(counters.followups_queued, 2u);
  EXPECT_EQ(counters.followups_drained, 1u);
  EXPECT_EQ(counters.sessions_reaped, 2u);
  EXPECT_EQ(counters.sessions_by_status[status_index(SessionStatus::running)], 0u);
  EXPECT_EQ(counters.sessions_by_status[status_index(SessionStatus::closed)], 1u);
  EXPECT_EQ(counters.sessions_by_status[status_index(SessionStatus::timed_out)], 2u);
  EXPECT_EQ(pool->limits().max_active_sessions, 4u);
}

}  // namespace
}  // namespace tau::bridge
