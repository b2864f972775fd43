#include "bridge/session_pool.h"

#include <gtest/gtest.h>

#include "core/text.h"
#include "store/memory_store.h"
#include "support/manual_clock.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tau::bridge {
namespace {

using namespace tau::core;  // the session vocabulary the pool speaks
using test::ManualClock;

constexpr std::int64_t kStartMs = 1'700'000'000'000;
constexpr std::int64_t kTimeoutMs = 1'000;

// Hands out "session-1", "session-2", ... and counts how often it was asked.
class SequentialIds {
 public:
  SessionPool::IdGenerator as_generator() const {
    return [calls = calls_] { return "session-" + std::to_string(++*calls); };
  }
  int calls() const { return calls_->load(); }

 private:
  std::shared_ptr<std::atomic<int>> calls_ = std::make_shared<std::atomic<int>>(0);
};

PoolLimits test_limits() {
  PoolLimits limits;
  limits.inactivity_timeout_ms = kTimeoutMs;
  limits.max_active_sessions = 4;
  limits.max_events_per_session = 100;
  return limits;
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

class SessionPoolTest : public ::testing::Test {
 protected:
  SessionPool make_pool(PoolLimits limits = test_limits()) {
    return SessionPool(limits, clock_.as_clock(), ids_.as_generator());
  }

  ManualClock clock_{kStartMs};
  SequentialIds ids_;
};

// --- open and reuse ---------------------------------------------------------------------------

TEST_F(SessionPoolTest, OpenStartsRunningSessionWithTrimmedWorkspaceId) {
  SessionPool pool = make_pool();

  const SessionSnapshot session = pool.open(" \t ws-1 \r\n").session;

  EXPECT_EQ(session.session_id, "session-1");
  EXPECT_EQ(session.workspace_id, "ws-1");
  EXPECT_EQ(session.status, SessionStatus::running);
  EXPECT_EQ(session.started_unix_ms, kStartMs);
  EXPECT_EQ(session.last_activity_unix_ms, kStartMs);
  EXPECT_EQ(session.queued_followups, 0u);
  EXPECT_EQ(pool.runtime().active_sessions, 1u);
}

TEST_F(SessionPoolTest, OpenRejectsEmptyOrWhitespaceWorkspaceId) {
  SessionPool pool = make_pool();

  for (const char* workspace : {"", " ", "\t\r\n\f\v "}) {
    SCOPED_TRACE(testing::Message() << "workspace_id=[" << workspace << "]");
    EXPECT_EQ(bridge_error_of([&] { pool.open(workspace); }), ErrorCode::invalid_workspace_id);
  }
  EXPECT_EQ(pool.runtime().active_sessions, 0u);
  EXPECT_EQ(ids_.calls(), 0);
}

TEST_F(SessionPoolTest, OpenReturnsTheRunningSessionOfTheSameWorkspace) {
  SessionPool pool = make_pool();
  const SessionSnapshot first = pool.open("ws-1").session;
  clock_.advance(250);

  const SessionSnapshot again = pool.open("  ws-1  ").session;

  EXPECT_EQ(again.session_id, first.session_id);
  EXPECT_EQ(again.workspace_id, "ws-1");
  EXPECT_EQ(again.started_unix_ms, kStartMs);
  EXPECT_EQ(again.last_activity_unix_ms, kStartMs + 250);
  EXPECT_EQ(ids_.calls(), 1);
  EXPECT_EQ(pool.runtime().active_sessions, 1u);
}

TEST_F(SessionPoolTest, DifferentWorkspacesGetDifferentSessions) {
  SessionPool pool = make_pool();

  const SessionSnapshot a = pool.open("ws-a").session;
  const SessionSnapshot b = pool.open("ws-b").session;

  EXPECT_NE(a.session_id, b.session_id);
  EXPECT_EQ(a.workspace_id, "ws-a");
  EXPECT_EQ(b.workspace_id, "ws-b");
  EXPECT_EQ(pool.runtime().active_sessions, 2u);
}

TEST_F(SessionPoolTest, WorkspaceIdsAreCaseSensitive) {
  SessionPool pool = make_pool();

  EXPECT_NE(pool.open("WS").session.session_id, pool.open("ws").session.session_id);
}

TEST_F(SessionPoolTest, UsesInjectedIdGeneratorAndSkipsIdsAlreadyTaken) {
  std::vector<std::string> handed_out{"dup", "dup", "unique"};
  std::size_t next = 0;
  SessionPool pool(test_limits(), clock_.as_clock(), [&] { return handed_out.at(next++); });

  EXPECT_EQ(pool.open("ws-1").session.session_id, "dup");
  EXPECT_EQ(pool.open("ws-2").session.session_id, "unique");
  EXPECT_EQ(next, 3u);
}

TEST_F(SessionPoolTest, DefaultIdGeneratorGivesUnguessableIds) {
  SessionPool pool(test_limits(), clock_.as_clock());

  const std::string a = pool.open("ws-1").session.session_id;
  const std::string b = pool.open("ws-2").session.session_id;

  for (const std::string& id : {a, b}) {
    ASSERT_EQ(id.size(), 4u + 32u) << id;
    EXPECT_EQ(id.substr(0, 4), "eca_");
    EXPECT_TRUE(std::all_of(id.begin() + 4, id.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    })) << id;
  }
  EXPECT_NE(a, b);
}

// --- terminal states --------------------------------------------------------------------------

enum class Ending { closed, timed_out, completed, failed };

std::string ending_name(const testing::TestParamInfo<Ending>& info) {
  switch (info.param) {
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

class SessionPoolEndingTest : public SessionPoolTest, public testing::WithParamInterface<Ending> {
 protected:
  // Ends the session the way the parameter says.
  void end(SessionPool& pool, const std::string& session_id) {
    switch (GetParam()) {
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

TEST_P(SessionPoolEndingTest, ReopeningTheWorkspaceGivesFreshSessionAndOldOneStaysInspectable) {
  SessionPool pool = make_pool();
  const SessionSnapshot old_session = pool.open("ws-1").session;
  pool.append_progress(old_session.session_id, "working");
  end(pool, old_session.session_id);
  EXPECT_EQ(pool.runtime().active_sessions, 0u);

  const SessionSnapshot fresh = pool.open("ws-1").session;

  EXPECT_NE(fresh.session_id, old_session.session_id);
  EXPECT_EQ(fresh.status, SessionStatus::running);
  EXPECT_EQ(fresh.workspace_id, "ws-1");
  EXPECT_EQ(pool.runtime().active_sessions, 1u);

  const SessionSnapshot old_now = pool.get(old_session.session_id);
  EXPECT_EQ(old_now.status, status_after(GetParam()));
  EXPECT_EQ(old_now.workspace_id, "ws-1");
  const Replay old_events = pool.replay(old_session.session_id, std::nullopt, 100);
  EXPECT_EQ(old_events.session.status, status_after(GetParam()));
  EXPECT_EQ(messages(old_events.events), std::vector<std::string>{"working"});
  // The fresh session has its own, empty log.
  EXPECT_TRUE(pool.replay(fresh.session_id, std::nullopt, 100).events.empty());
}

TEST_P(SessionPoolEndingTest, EndedSessionRefusesProgressAndFollowups) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  end(pool, id);

  EXPECT_EQ(bridge_error_of([&] { pool.append_progress(id, "late"); }),
            ErrorCode::session_not_running);
  EXPECT_EQ(bridge_error_of([&] { pool.append_followup(id, "late"); }),
            ErrorCode::session_not_running);
  EXPECT_TRUE(pool.replay(id, std::nullopt, 100).events.empty());
  EXPECT_EQ(pool.get(id).queued_followups, 0u);
}

TEST_P(SessionPoolEndingTest, EndedSessionStillDrainsItsQueuedFollowups) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  pool.append_followup(id, "first");
  pool.append_followup(id, "second");
  end(pool, id);
  const SessionSnapshot before = pool.get(id);

  const DrainResult drained = pool.drain_followups(id, 10);

  EXPECT_EQ(drained.followups, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(drained.session.status, status_after(GetParam()));
  EXPECT_EQ(drained.session.queued_followups, 0u);
  EXPECT_EQ(drained.session.last_activity_unix_ms, before.last_activity_unix_ms);
}

TEST_P(SessionPoolEndingTest, FirstTerminalStatusSticks) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  end(pool, id);

  EXPECT_EQ(pool.close(id).session.status, status_after(GetParam()));
  EXPECT_EQ(pool.end_session(id, SessionStatus::failed).session.status, status_after(GetParam()));
  EXPECT_EQ(pool.end_session(id, SessionStatus::completed).session.status,
            status_after(GetParam()));
  EXPECT_EQ(pool.get(id).status, status_after(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(AllTerminalStates, SessionPoolEndingTest,
                         testing::Values(Ending::closed, Ending::timed_out, Ending::completed,
                                         Ending::failed),
                         ending_name);

TEST_F(SessionPoolTest, EndSessionWithRunningStatusChangesNothing) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  EXPECT_EQ(pool.end_session(id, SessionStatus::running).session.status, SessionStatus::running);
  EXPECT_EQ(pool.runtime().active_sessions, 1u);
  EXPECT_EQ(pool.open("ws-1").session.session_id, id);
}

TEST_F(SessionPoolTest, CloseReturnsClosedSnapshotStampedWithCloseTime) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  clock_.advance(40);

  const SessionSnapshot closed = pool.close(id).session;

  EXPECT_EQ(closed.session_id, id);
  EXPECT_EQ(closed.status, SessionStatus::closed);
  EXPECT_EQ(closed.last_activity_unix_ms, kStartMs + 40);
}

// --- unknown ids and invalid messages ---------------------------------------------------------

TEST_F(SessionPoolTest, UnknownSessionIdIsNotFoundEverywhere) {
  SessionPool pool = make_pool();
  pool.open("ws-1");
  const std::string unknown = "session-404";

  EXPECT_EQ(bridge_error_of([&] { pool.get(unknown); }), ErrorCode::session_not_found);
  EXPECT_EQ(bridge_error_of([&] { pool.append_progress(unknown, "x"); }),
            ErrorCode::session_not_found);
  EXPECT_EQ(bridge_error_of([&] { pool.append_followup(unknown, "x"); }),
            ErrorCode::session_not_found);
  EXPECT_EQ(bridge_error_of([&] { pool.drain_followups(unknown, 1); }),
            ErrorCode::session_not_found);
  EXPECT_EQ(bridge_error_of([&] { pool.replay(unknown, std::nullopt, 1); }),
            ErrorCode::session_not_found);
  EXPECT_EQ(bridge_error_of([&] { pool.close(unknown); }), ErrorCode::session_not_found);
  EXPECT_EQ(bridge_error_of([&] { pool.end_session(unknown, SessionStatus::failed); }),
            ErrorCode::session_not_found);
  // A workspace id is not a session id.
  EXPECT_EQ(bridge_error_of([&] { pool.get("ws-1"); }), ErrorCode::session_not_found);
}

TEST_F(SessionPoolTest, BlankMessagesAreRejectedAndOthersStoredTrimmed) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  EXPECT_EQ(bridge_error_of([&] { pool.append_progress(id, " \n\t"); }),
            ErrorCode::invalid_message);
  EXPECT_EQ(bridge_error_of([&] { pool.append_followup(id, ""); }), ErrorCode::invalid_message);
  EXPECT_EQ(pool.append_progress(id, "  step one\n").event.message, "step one");
  EXPECT_EQ(pool.append_followup(id, "\tdo this ").event.message, "do this");
  EXPECT_EQ(pool.drain_followups(id, 10).followups, std::vector<std::string>{"do this"});
  // Rejected messages used no sequence ids.
  EXPECT_EQ(sequence_ids(pool.replay(id, std::nullopt, 10).events),
            (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(SessionPoolTest, MessagesKeepInnerLineBreaks) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  EXPECT_EQ(pool.append_progress(id, "line 1\nline 2\r\nline 3").event.message,
            "line 1\nline 2\r\nline 3");
}

// --- follow-up queue --------------------------------------------------------------------------

TEST_F(SessionPoolTest, DrainTakesFollowupsOldestFirstUpToTheLimit) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  for (const char* message : {"f1", "f2", "f3", "f4", "f5"}) {
    pool.append_followup(id, message);
  }
  EXPECT_EQ(pool.get(id).queued_followups, 5u);

  const DrainResult first = pool.drain_followups(id, 2);
  EXPECT_EQ(first.followups, (std::vector<std::string>{"f1", "f2"}));
  EXPECT_EQ(first.session.queued_followups, 3u);
  EXPECT_EQ(pool.get(id).queued_followups, 3u);

  const DrainResult rest = pool.drain_followups(id, 100);
  EXPECT_EQ(rest.followups, (std::vector<std::string>{"f3", "f4", "f5"}));
  EXPECT_EQ(rest.session.queued_followups, 0u);

  const DrainResult empty = pool.drain_followups(id, 100);
  EXPECT_TRUE(empty.followups.empty());
  EXPECT_EQ(empty.session.queued_followups, 0u);
}

TEST_F(SessionPoolTest, DrainWithZeroLimitTakesNothing) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  pool.append_followup(id, "f1");

  const DrainResult drained = pool.drain_followups(id, 0);

  EXPECT_TRUE(drained.followups.empty());
  EXPECT_EQ(drained.session.queued_followups, 1u);
}

TEST_F(SessionPoolTest, FollowupsInterleavedWithDrainsKeepFifoOrder) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  pool.append_followup(id, "a");
  pool.append_followup(id, "b");
  EXPECT_EQ(pool.drain_followups(id, 1).followups, std::vector<std::string>{"a"});
  pool.append_followup(id, "c");

  EXPECT_EQ(pool.drain_followups(id, 5).followups, (std::vector<std::string>{"b", "c"}));
}

TEST_F(SessionPoolTest, ProgressEventsAreNotQueuedAsFollowups) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  const AppendResult progress = pool.append_progress(id, "p");
  const AppendResult followup = pool.append_followup(id, "f");

  EXPECT_EQ(progress.session.queued_followups, 0u);
  EXPECT_EQ(followup.session.queued_followups, 1u);
  EXPECT_EQ(pool.drain_followups(id, 10).followups, std::vector<std::string>{"f"});
}

TEST_F(SessionPoolTest, DrainingDoesNotRemoveFollowupEventsFromTheLog) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  pool.append_followup(id, "f1");
  pool.drain_followups(id, 10);

  const Replay replay = pool.replay(id, std::nullopt, 10);

  ASSERT_EQ(replay.events.size(), 1u);
  EXPECT_EQ(replay.events[0]->event.event_type, event_types::followup);
  EXPECT_EQ(replay.events[0]->event.message, "f1");
}

// --- event log --------------------------------------------------------------------------------

TEST_F(SessionPoolTest, SequenceIdsCountWithoutGapsAcrossProgressAndFollowups) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  const AppendResult first = pool.append_progress(id, "p1");
  clock_.advance(5);
  const AppendResult second = pool.append_followup(id, "f1");
  clock_.advance(5);
  const AppendResult third = pool.append_progress(id, "p2");

  EXPECT_EQ(first.event.sequence_id, 1u);
  EXPECT_EQ(second.event.sequence_id, 2u);
  EXPECT_EQ(third.event.sequence_id, 3u);
  EXPECT_EQ(first.event.event_type, event_types::progress);
  EXPECT_EQ(second.event.event_type, event_types::followup);
  EXPECT_EQ(third.event.event_type, event_types::progress);
  EXPECT_EQ(first.event.timestamp_unix_ms, kStartMs);
  EXPECT_EQ(third.event.timestamp_unix_ms, kStartMs + 10);
  EXPECT_EQ(third.session.last_activity_unix_ms, kStartMs + 10);

  const Replay replay = pool.replay(id, std::nullopt, 10);
  EXPECT_EQ(sequence_ids(replay.events), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(messages(replay.events), (std::vector<std::string>{"p1", "f1", "p2"}));
}

TEST_F(SessionPoolTest, SequenceIdsArePerSession) {
  SessionPool pool = make_pool();
  const std::string a = pool.open("ws-a").session.session_id;
  const std::string b = pool.open("ws-b").session.session_id;

  pool.append_progress(a, "a1");
  pool.append_progress(a, "a2");

  EXPECT_EQ(pool.append_progress(b, "b1").event.sequence_id, 1u);
  EXPECT_EQ(pool.append_progress(a, "a3").event.sequence_id, 3u);
}

TEST_F(SessionPoolTest, ReplayCursorAndLimit) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  for (const char* message : {"e1", "e2", "e3", "e4", "e5"}) {
    pool.append_progress(id, message);
  }
  using Ids = std::vector<std::uint64_t>;

  EXPECT_EQ(sequence_ids(pool.replay(id, std::nullopt, 100).events), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool.replay(id, 0, 100).events), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool.replay(id, 2, 100).events), (Ids{3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool.replay(id, 2, 2).events), (Ids{3, 4}));
  EXPECT_EQ(sequence_ids(pool.replay(id, std::nullopt, 3).events), (Ids{1, 2, 3}));
  EXPECT_EQ(sequence_ids(pool.replay(id, 4, 100).events), (Ids{5}));
  EXPECT_TRUE(pool.replay(id, 5, 100).events.empty());
  EXPECT_TRUE(pool.replay(id, 6, 100).events.empty());
  EXPECT_TRUE(pool.replay(id, UINT64_MAX, 100).events.empty());
  EXPECT_TRUE(pool.replay(id, std::nullopt, 0).events.empty());

  const Replay replay = pool.replay(id, 3, 100);
  EXPECT_EQ(replay.session.session_id, id);
  EXPECT_EQ(replay.session.status, SessionStatus::running);
  EXPECT_EQ(messages(replay.events), (std::vector<std::string>{"e4", "e5"}));
}

TEST_F(SessionPoolTest, ReplayOfSessionWithoutEventsIsEmpty) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  EXPECT_TRUE(pool.replay(id, std::nullopt, 100).events.empty());
  EXPECT_TRUE(pool.replay(id, 0, 100).events.empty());
}

TEST_F(SessionPoolTest, RetentionDropsOldestEventsButSequenceIdsKeepCounting) {
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 3;
  SessionPool pool = make_pool(limits);
  const std::string id = pool.open("ws-1").session.session_id;
  for (const char* message : {"e1", "e2", "e3", "e4", "e5"}) {
    pool.append_progress(id, message);
  }
  using Ids = std::vector<std::uint64_t>;

  EXPECT_EQ(sequence_ids(pool.replay(id, std::nullopt, 100).events), (Ids{3, 4, 5}));
  EXPECT_EQ(messages(pool.replay(id, std::nullopt, 100).events),
            (std::vector<std::string>{"e3", "e4", "e5"}));
  // A cursor before the retained window gets what is still there.
  EXPECT_EQ(sequence_ids(pool.replay(id, 1, 100).events), (Ids{3, 4, 5}));
  EXPECT_EQ(sequence_ids(pool.replay(id, 3, 100).events), (Ids{4, 5}));

  EXPECT_EQ(pool.append_followup(id, "e6").event.sequence_id, 6u);
  EXPECT_EQ(sequence_ids(pool.replay(id, std::nullopt, 100).events), (Ids{4, 5, 6}));
}

TEST_F(SessionPoolTest, RetentionDoesNotDropQueuedFollowups) {
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 1;
  SessionPool pool = make_pool(limits);
  const std::string id = pool.open("ws-1").session.session_id;
  pool.append_followup(id, "f1");
  pool.append_followup(id, "f2");
  pool.append_progress(id, "p");

  EXPECT_EQ(pool.replay(id, std::nullopt, 100).events.size(), 1u);
  EXPECT_EQ(pool.drain_followups(id, 10).followups, (std::vector<std::string>{"f1", "f2"}));
}

// --- inactivity timeout -----------------------------------------------------------------------

TEST_F(SessionPoolTest, ReapTimesOutOnlySessionsIdleStrictlyLongerThanTheTimeout) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;

  const ReapResult at_timeout = pool.reap(kStartMs + kTimeoutMs);
  EXPECT_TRUE(at_timeout.reaped.empty());
  EXPECT_EQ(at_timeout.runtime.active_sessions, 1u);
  EXPECT_EQ(pool.get(id).status, SessionStatus::running);

  const ReapResult past_timeout = pool.reap(kStartMs + kTimeoutMs + 1);
  ASSERT_EQ(past_timeout.reaped.size(), 1u);
  EXPECT_EQ(past_timeout.reaped[0].session_id, id);
  EXPECT_EQ(past_timeout.reaped[0].workspace_id, "ws-1");
  EXPECT_EQ(past_timeout.reaped[0].status, SessionStatus::timed_out);
  EXPECT_EQ(past_timeout.runtime.active_sessions, 0u);
  EXPECT_EQ(past_timeout.runtime.inactivity_timeout_ms, kTimeoutMs);
  EXPECT_EQ(past_timeout.runtime.max_active_sessions, 4u);
  EXPECT_EQ(past_timeout.runtime.max_events_per_session, 100u);
  EXPECT_EQ(pool.get(id).status, SessionStatus::timed_out);

  // Already ended: a later reap does not report it again.
  EXPECT_TRUE(pool.reap(kStartMs + 10 * kTimeoutMs).reaped.empty());
}

TEST_F(SessionPoolTest, ReapNowUsesTheInjectedClock) {
  SessionPool pool = make_pool();
  pool.open("ws-1");

  clock_.set(kStartMs + kTimeoutMs);
  EXPECT_TRUE(pool.reap_now().reaped.empty());
  clock_.set(kStartMs + kTimeoutMs + 1);
  EXPECT_EQ(pool.reap_now().reaped.size(), 1u);
  EXPECT_EQ(pool.now(), kStartMs + kTimeoutMs + 1);
}

TEST_F(SessionPoolTest, ReapReportsStaleSessionsOldestActivityFirstAndSparesFreshOnes) {
  SessionPool pool = make_pool();
  const std::string a = pool.open("ws-a").session.session_id;
  clock_.advance(10);
  const std::string b = pool.open("ws-b").session.session_id;
  clock_.advance(10);
  const std::string c = pool.open("ws-c").session.session_id;
  clock_.advance(500);
  pool.append_progress(a, "a is alive");  // a is now the most recent

  const ReapResult result = pool.reap(kStartMs + 20 + kTimeoutMs + 1);

  ASSERT_EQ(result.reaped.size(), 2u);
  EXPECT_EQ(result.reaped[0].session_id, b);
  EXPECT_EQ(result.reaped[1].session_id, c);
  EXPECT_EQ(result.runtime.active_sessions, 1u);
  EXPECT_EQ(pool.get(a).status, SessionStatus::running);
}

TEST_F(SessionPoolTest, ActivityPostponesTheTimeout) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  clock_.advance(kTimeoutMs);
  pool.append_progress(id, "p");  // idle for exactly the timeout: not yet stale
  clock_.advance(kTimeoutMs);
  pool.append_followup(id, "f");
  clock_.advance(kTimeoutMs);
  pool.drain_followups(id, 1);  // polling the queue counts as activity
  clock_.advance(kTimeoutMs);
  pool.open("ws-1");  // so does reopening the running session
  clock_.advance(kTimeoutMs);

  EXPECT_TRUE(pool.reap_now().reaped.empty());
  EXPECT_EQ(pool.get(id).status, SessionStatus::running);
}

TEST_F(SessionPoolTest, GetAndReplayDoNotCountAsActivity) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  clock_.advance(kTimeoutMs);
  pool.get(id);
  pool.replay(id, std::nullopt, 10);
  clock_.advance(1);

  EXPECT_EQ(pool.get(id).status, SessionStatus::timed_out);
}

TEST_F(SessionPoolTest, GetReapsStaleSessionFirst) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  clock_.advance(kTimeoutMs + 1);

  const SessionSnapshot session = pool.get(id);

  EXPECT_EQ(session.status, SessionStatus::timed_out);
  EXPECT_EQ(session.last_activity_unix_ms, kStartMs);
  EXPECT_EQ(pool.runtime().active_sessions, 0u);
}

TEST_F(SessionPoolTest, ProgressAndFollowupReapStaleSessionFirst) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  clock_.advance(kTimeoutMs + 1);

  EXPECT_EQ(bridge_error_of([&] { pool.append_progress(id, "too late"); }),
            ErrorCode::session_not_running);
  EXPECT_EQ(bridge_error_of([&] { pool.append_followup(id, "too late"); }),
            ErrorCode::session_not_running);
  EXPECT_EQ(pool.get(id).status, SessionStatus::timed_out);
}

TEST_F(SessionPoolTest, OpenReapsStaleSessionFirstAndStartsAFreshOne) {
  SessionPool pool = make_pool();
  const std::string stale = pool.open("ws-1").session.session_id;
  clock_.advance(kTimeoutMs + 1);

  const SessionSnapshot fresh = pool.open("ws-1").session;

  EXPECT_NE(fresh.session_id, stale);
  EXPECT_EQ(fresh.started_unix_ms, kStartMs + kTimeoutMs + 1);
  EXPECT_EQ(pool.get(stale).status, SessionStatus::timed_out);
  EXPECT_EQ(pool.runtime().active_sessions, 1u);
}

TEST_F(SessionPoolTest, CloseOfStaleSessionReportsTimedOut) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  clock_.advance(kTimeoutMs + 1);

  EXPECT_EQ(pool.close(id).session.status, SessionStatus::timed_out);
}

// --- active session limit ---------------------------------------------------------------------

TEST_F(SessionPoolTest, OpeningBeyondTheLimitFailsButReusingARunningSessionDoesNot) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 2;
  SessionPool pool = make_pool(limits);
  const std::string a = pool.open("ws-a").session.session_id;
  pool.open("ws-b");

  EXPECT_EQ(bridge_error_of([&] { pool.open("ws-c"); }), ErrorCode::session_limit_reached);
  EXPECT_EQ(pool.open("ws-a").session.session_id, a);
  EXPECT_EQ(pool.runtime().active_sessions, 2u);
  EXPECT_EQ(ids_.calls(), 2);
}

TEST_F(SessionPoolTest, EndedSessionsFreeTheirSlot) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 2;
  SessionPool pool = make_pool(limits);
  const std::string a = pool.open("ws-a").session.session_id;
  const std::string b = pool.open("ws-b").session.session_id;

  pool.close(a);
  EXPECT_NO_THROW(pool.open("ws-c"));
  EXPECT_EQ(bridge_error_of([&] { pool.open("ws-d"); }), ErrorCode::session_limit_reached);

  pool.end_session(b, SessionStatus::completed);
  EXPECT_NO_THROW(pool.open("ws-d"));
  EXPECT_EQ(pool.runtime().active_sessions, 2u);
}

TEST_F(SessionPoolTest, TimedOutSessionsFreeTheirSlotWhenOpenReapsThem) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 1;
  SessionPool pool = make_pool(limits);
  const std::string a = pool.open("ws-a").session.session_id;
  EXPECT_EQ(bridge_error_of([&] { pool.open("ws-b"); }), ErrorCode::session_limit_reached);
  clock_.advance(kTimeoutMs + 1);

  const SessionSnapshot b = pool.open("ws-b").session;

  EXPECT_EQ(b.status, SessionStatus::running);
  EXPECT_EQ(pool.get(a).status, SessionStatus::timed_out);
}

// --- concurrency ------------------------------------------------------------------------------

TEST_F(SessionPoolTest, RacingOpensOfOneWorkspaceShareOneSession) {
  // Several rounds, each with a fresh pool, to give a race more than one chance to show.
  constexpr int kRounds = 50;
  constexpr int kThreads = 16;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    SequentialIds ids;
    SessionPool pool(test_limits(), clock_.as_clock(), ids.as_generator());
    std::vector<std::string> session_ids(kThreads);
    std::latch start(kThreads);
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
          start.arrive_and_wait();
          session_ids[i] = pool.open("shared-ws").session.session_id;
        });
      }
    }

    ASSERT_EQ(std::set<std::string>(session_ids.begin(), session_ids.end()).size(), 1u);
    ASSERT_EQ(session_ids[0], "session-1");
    ASSERT_EQ(ids.calls(), 1);
    ASSERT_EQ(pool.runtime().active_sessions, 1u);
  }
}

TEST_F(SessionPoolTest, RacingOpensOfDistinctWorkspacesNeverExceedTheLimit) {
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 5;
  SessionPool pool = make_pool(limits);
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
          pool.open("ws-" + std::to_string(i));
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
  EXPECT_EQ(pool.runtime().active_sessions, 5u);
}

TEST_F(SessionPoolTest, ConcurrentAppendsGetUniqueGaplessSequenceIds) {
  SessionPool pool = make_pool();
  const std::string id = pool.open("ws-1").session.session_id;
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 10;
  std::vector<std::vector<std::uint64_t>> seen(kThreads);
  std::latch start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kAppendsPerThread; ++i) {
          const AppendResult result =
              (i % 2 == 0) ? pool.append_progress(id, "p") : pool.append_followup(id, "f");
          seen[t].push_back(result.event.sequence_id);
        }
      });
    }
  }

  std::vector<std::uint64_t> all;
  for (const auto& ids : seen)
    all.insert(all.end(), ids.begin(), ids.end());
  std::sort(all.begin(), all.end());
  std::vector<std::uint64_t> expected(kThreads * kAppendsPerThread);
  for (std::size_t i = 0; i < expected.size(); ++i)
    expected[i] = i + 1;
  EXPECT_EQ(all, expected);
  EXPECT_EQ(sequence_ids(pool.replay(id, std::nullopt, 1000).events), expected);
  EXPECT_EQ(pool.get(id).queued_followups, static_cast<std::size_t>(kThreads * 5));
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

// Records what the pool tells it, as a stream would before waking its writer.
class RecordingFollower : public SessionFollower {
 public:
  void notify(std::uint64_t encoded_bytes_total) override {
    ++notifications;
    last_total = encoded_bytes_total;
  }
  int notifications = 0;
  std::uint64_t last_total = 0;
};

SessionPool encoding_pool(const ManualClock& clock, PoolLimits limits = test_limits()) {
  return SessionPool(limits, clock.as_clock(), nullptr, [](const SessionEvent& event) {
    return "<" + std::to_string(event.sequence_id) + ":" + event.message + ">";
  });
}

TEST(SessionPoolFollowTest, EventsAreEncodedOnceWithRunningByteTotals) {
  ManualClock clock{kStartMs};
  SessionPool pool = encoding_pool(clock);
  const std::string id = pool.open("w").session.session_id;
  pool.append_progress(id, "a");
  pool.append_followup(id, "bc");
  const Replay first = pool.replay(id, std::nullopt, 10);
  const Replay second = pool.replay(id, std::nullopt, 10);
  ASSERT_EQ(first.events.size(), 2u);
  EXPECT_EQ(first.events[0]->encoded, "<1:a>");
  EXPECT_EQ(first.events[1]->encoded, "<2:bc>");
  EXPECT_EQ(first.events[0]->encoded_bytes_through, 5u);
  EXPECT_EQ(first.events[1]->encoded_bytes_through, 11u);
  // Every reader shares the same retained event rather than a copy.
  EXPECT_EQ(first.events[1].get(), second.events[1].get());
}

TEST(SessionPoolFollowTest, FollowReplaysAndThenNotifiesOfEachAppend) {
  ManualClock clock{kStartMs};
  SessionPool pool = encoding_pool(clock);
  const std::string id = pool.open("w").session.session_id;
  pool.append_progress(id, "before");
  auto follower = std::make_shared<RecordingFollower>();
  const FollowStart start = pool.follow(id, std::nullopt, 10, follower);
  EXPECT_EQ(sequence_ids(start.replay.events), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(start.live_after_sequence_id, 1u);
  EXPECT_EQ(follower->notifications, 0);

  pool.append_progress(id, "live");
  EXPECT_EQ(follower->notifications, 1);
  EXPECT_EQ(follower->last_total, std::string("<1:before><2:live>").size());
  const FollowUpdate update = pool.events_after(id, start.live_after_sequence_id, 10);
  EXPECT_EQ(messages(update.events), (std::vector<std::string>{"live"}));
  EXPECT_FALSE(update.events_lost);
  EXPECT_EQ(update.session.status, SessionStatus::running);

  pool.unfollow(id, follower.get());
  pool.append_progress(id, "unheard");
  EXPECT_EQ(follower->notifications, 1);
}

TEST(SessionPoolFollowTest, LiveEventsStartAfterTheNewestEvenWhenTheReplayIsLimited) {
  ManualClock clock{kStartMs};
  SessionPool pool = encoding_pool(clock);
  const std::string id = pool.open("w").session.session_id;
  for (int i = 0; i < 5; ++i)
    pool.append_progress(id, "e");
  const FollowStart start = pool.follow(id, 1, 2, std::make_shared<RecordingFollower>());
  EXPECT_EQ(sequence_ids(start.replay.events), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(start.live_after_sequence_id, 5u);
}

TEST(SessionPoolFollowTest, EndingTheSessionNotifiesOnceAndReleasesFollowers) {
  ManualClock clock{kStartMs};
  SessionPool pool = encoding_pool(clock);
  const std::string id = pool.open("w").session.session_id;
  auto follower = std::make_shared<RecordingFollower>();
  pool.follow(id, std::nullopt, 10, follower);
  pool.close(id);
  EXPECT_EQ(follower->notifications, 1);
  EXPECT_EQ(follower.use_count(), 1) << "the pool must not keep followers of an ended session";
  EXPECT_EQ(pool.events_after(id, 0, 10).session.status, SessionStatus::closed);
}

TEST(SessionPoolFollowTest, ReapingNotifiesFollowersOfTimedOutSessions) {
  ManualClock clock{kStartMs};
  SessionPool pool = encoding_pool(clock);
  const std::string id = pool.open("w").session.session_id;
  auto follower = std::make_shared<RecordingFollower>();
  pool.follow(id, std::nullopt, 10, follower);
  pool.reap(clock.now() + kTimeoutMs + 1);
  EXPECT_EQ(follower->notifications, 1);
}

TEST(SessionPoolFollowTest, EndedSessionsAreNotFollowed) {
  ManualClock clock{kStartMs};
  SessionPool pool = encoding_pool(clock);
  const std::string id = pool.open("w").session.session_id;
  pool.append_progress(id, "only");
  pool.close(id);
  auto follower = std::make_shared<RecordingFollower>();
  const FollowStart start = pool.follow(id, std::nullopt, 10, follower);
  EXPECT_EQ(start.replay.session.status, SessionStatus::closed);
  EXPECT_EQ(start.replay.events.size(), 1u);
  EXPECT_EQ(follower.use_count(), 1);
}

TEST(SessionPoolFollowTest, RetentionReportsTheFirstRetainedIdAndLostEvents) {
  ManualClock clock{kStartMs};
  PoolLimits limits = test_limits();
  limits.max_events_per_session = 3;
  SessionPool pool = encoding_pool(clock, limits);
  const std::string id = pool.open("w").session.session_id;
  for (int i = 0; i < 6; ++i)
    pool.append_progress(id, "e");
  const Replay replay = pool.replay(id, 1, 10);
  EXPECT_EQ(replay.first_retained_sequence_id, 4u);
  EXPECT_EQ(replay.last_sequence_id, 6u);
  EXPECT_TRUE(pool.events_after(id, 2, 10).events_lost);
  EXPECT_FALSE(pool.events_after(id, 3, 10).events_lost);
  EXPECT_FALSE(pool.events_after(id, 6, 10).events_lost);
  EXPECT_EQ(sequence_ids(pool.events_after(id, 3, 2).events), (std::vector<std::uint64_t>{4, 5}));
}

TEST(SessionPoolWorkerSupportTest, OpenTellsWhetherItCreatedTheSession) {
  ManualClock clock{kStartMs};
  SessionPool pool(test_limits(), clock.as_clock());
  const OpenResult first = pool.open("w");
  EXPECT_TRUE(first.created);
  const OpenResult again = pool.open("w");
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.session.session_id, first.session.session_id);
}

TEST(SessionPoolWorkerSupportTest, DiscardRemovesAJustCreatedSessionEntirely) {
  ManualClock clock{kStartMs};
  SessionPool pool(test_limits(), clock.as_clock());
  const std::string id = pool.open("w").session.session_id;
  pool.discard(id);
  EXPECT_EQ(bridge_error_of([&] { pool.get(id); }), ErrorCode::session_not_found);
  EXPECT_EQ(pool.runtime().active_sessions, 0u);
  EXPECT_TRUE(pool.open("w").created);
  pool.discard("no-such-session");  // harmless
}

TEST(SessionPoolWorkerSupportTest, AppendEventRecordsAnyTypeEvenAfterTheSessionEnded) {
  ManualClock clock{kStartMs};
  SessionPool pool(test_limits(), clock.as_clock());
  const std::string id = pool.open("w").session.session_id;
  EXPECT_EQ(pool.append_event(id, "subprocess.stdout", "  kept as is ").event.message,
            "  kept as is ");
  pool.close(id);
  const std::int64_t closed_activity = pool.get(id).last_activity_unix_ms;
  clock.advance(50);
  const AppendResult exit = pool.append_event(id, "subprocess.exit", "exit code 0");
  EXPECT_EQ(exit.event.sequence_id, 2u);
  EXPECT_EQ(exit.event.event_type, "subprocess.exit");
  EXPECT_EQ(exit.session.status, SessionStatus::closed);
  EXPECT_EQ(exit.session.last_activity_unix_ms, closed_activity);
  EXPECT_EQ(bridge_error_of([&] { pool.append_event("nope", "x", "y"); }),
            ErrorCode::session_not_found);
}

TEST(SessionPoolWorkerSupportTest, EndListenerHearsEveryWayASessionEnds) {
  ManualClock clock{kStartMs};
  SessionPool pool(test_limits(), clock.as_clock());
  std::vector<std::pair<std::string, SessionStatus>> ended;
  pool.set_end_listener([&](const SessionSnapshot& session) {
    ended.emplace_back(session.session_id, session.status);
  });
  const std::string closed = pool.open("a").session.session_id;
  const std::string completed = pool.open("b").session.session_id;
  const std::string timed_out = pool.open("c").session.session_id;
  pool.close(closed);
  pool.close(closed);  // already ended: not told twice
  pool.end_session(completed, SessionStatus::completed);
  pool.reap(clock.now() + kTimeoutMs + 1);
  EXPECT_EQ(ended, (std::vector<std::pair<std::string, SessionStatus>>{
                       {closed, SessionStatus::closed},
                       {completed, SessionStatus::completed},
                       {timed_out, SessionStatus::timed_out}}));
}

// A store whose writes become durable only when the test says so, like a writer thread that has
// not committed yet.
class HeldStore final : public store::SessionStore {
 public:
  store::StoredState load() override { return inner_.load(); }
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

TEST(SessionPoolStoreTest, ReadersSeeOnlyWhatTheStoreMadeDurable) {
  ManualClock clock{kStartMs};
  auto held = std::make_shared<HeldStore>();
  SessionPool pool(
      test_limits(), clock.as_clock(), nullptr,
      [](const SessionEvent& e) { return std::string(e.sequence_id, 'x'); }, held);
  const std::string id = pool.open("w").session.session_id;
  held->commit();
  auto follower = std::make_shared<RecordingFollower>();
  pool.follow(id, std::nullopt, 10, follower);
  pool.append_progress(id, "a");
  pool.append_progress(id, "b");
  EXPECT_TRUE(pool.replay(id, std::nullopt, 10).events.empty());
  EXPECT_TRUE(pool.events_after(id, 0, 10).events.empty());
  EXPECT_EQ(follower->notifications, 0);
  held->commit();
  // One commit of two events wakes the follower once, with both visible.
  EXPECT_EQ(follower->notifications, 1);
  EXPECT_EQ(follower->last_total, 3u);
  EXPECT_EQ(sequence_ids(pool.events_after(id, 0, 10).events), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(pool.replay(id, std::nullopt, 10).last_sequence_id, 2u);

  // An end is not final for followers until it is durable, nor are the events before it.
  pool.append_progress(id, "c");
  pool.close(id);
  FollowUpdate update = pool.events_after(id, 2, 10);
  EXPECT_TRUE(update.events.empty());
  EXPECT_FALSE(update.finished);
  auto late = std::make_shared<RecordingFollower>();
  pool.follow(id, 2, 10, late);  // still followed: its end is not durable yet
  held->commit();
  EXPECT_EQ(late->notifications, 1);
  update = pool.events_after(id, 2, 10);
  EXPECT_EQ(sequence_ids(update.events), std::vector<std::uint64_t>{3});
  EXPECT_TRUE(update.finished);
  // A repeated close answers only once that end is durable (here it is).
  EXPECT_LE(pool.close(id).commit_ticket, held->durable_ticket());
  // Now ended for good: nobody is registered or notified again.
  pool.append_event(id, "subprocess.exit", "code 0");
  held->commit();
  EXPECT_EQ(late->notifications, 1);
}

TEST(SessionPoolStoreTest, EndedSessionsArePurgedAfterTheRetention) {
  ManualClock clock{kStartMs};
  auto shared_store = std::make_shared<store::MemoryStore>();
  PoolLimits limits = test_limits();
  limits.session_retention_ms = 1000;
  SessionPool pool(limits, clock.as_clock(), nullptr, nullptr, shared_store);
  const std::string old_id = pool.open("a").session.session_id;
  const std::string running = pool.open("b").session.session_id;
  pool.append_progress(old_id, "x");
  pool.close(old_id);
  clock.advance(500);
  const std::string recent = pool.open("c").session.session_id;
  pool.close(recent);
  EXPECT_EQ(pool.purge_ended(clock.now() + 500), 0u);  // exactly the retention: kept
  EXPECT_EQ(pool.purge_ended(clock.now() + 501), 1u);
  EXPECT_EQ(bridge_error_of([&] { pool.get(old_id); }), ErrorCode::session_not_found);
  EXPECT_EQ(pool.get(recent).status, SessionStatus::closed);
  const auto stored = shared_store->load();
  ASSERT_EQ(stored.sessions.size(), 2u);
  for (const auto& session : stored.sessions)
    EXPECT_NE(session.record.snapshot.session_id, old_id);
  // Running sessions are never purged, however old.
  EXPECT_EQ(pool.purge_ended(clock.now() + 1'000'000), 1u);
  EXPECT_EQ(pool.get(running).status, SessionStatus::running);
}

TEST(SessionPoolListTest, FiltersAndPagesNewestActivityFirst) {
  ManualClock clock{kStartMs};
  PoolLimits limits = test_limits();
  limits.max_active_sessions = 10;
  SequentialIds ids;
  SessionPool pool(limits, clock.as_clock(), ids.as_generator());
  const std::string a = pool.open("w1").session.session_id;  // session-1
  clock.advance(1);
  const std::string b = pool.open("w2").session.session_id;  // session-2
  clock.advance(1);
  const std::string c = pool.open("w1x").session.session_id;  // session-3
  const std::string d = pool.open("w3").session.session_id;   // session-4, same time as c
  clock.advance(1);
  pool.close(b);  // b and a: the newest activity, at the same time
  pool.append_progress(a, "x");

  auto ids_of = [](const ListPage& page) {
    std::vector<std::string> out;
    for (const auto& s : page.sessions)
      out.push_back(s.session_id);
    return out;
  };
  ListQuery all;
  // a and b share the newest activity: the greater id comes first; so do c and d.
  EXPECT_EQ(ids_of(pool.list(all)), (std::vector<std::string>{b, a, d, c}));

  ListQuery running;
  running.status = SessionStatus::running;
  EXPECT_EQ(ids_of(pool.list(running)), (std::vector<std::string>{a, d, c}));
  ListQuery workspace;
  workspace.workspace_id = "w1";
  EXPECT_EQ(ids_of(pool.list(workspace)), std::vector<std::string>{a});

  // Pages of two: each starts after the last one's final position, and says whether more follow.
  ListQuery paged;
  paged.limit = 2;
  ListPage first = pool.list(paged);
  EXPECT_EQ(ids_of(first), (std::vector<std::string>{b, a}));
  EXPECT_TRUE(first.more);
  paged.after = ListQuery::Position{first.sessions.back().last_activity_unix_ms,
                                    first.sessions.back().session_id};
  ListPage second = pool.list(paged);
  EXPECT_EQ(ids_of(second), (std::vector<std::string>{d, c}));
  EXPECT_FALSE(second.more);
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
