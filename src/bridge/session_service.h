#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/errors.h"
#include "core/session_types.h"
#include "metrics/histogram.h"
#include "store/session_store.h"

namespace tau::bridge {

struct PoolLimits {
  std::int64_t inactivity_timeout_ms = 600000;
  std::size_t max_active_sessions = 16;
  std::size_t max_events_per_session = 256;
  // Ended sessions are kept this long after they end, then deleted with their events.
  std::int64_t session_retention_ms = 168LL * 3600 * 1000;
  // What the events held in memory may take, all sessions together (EventWindow::memory_of).
  // Past it, windows are let go (their events stay in a store that reads them back) and, when
  // nothing more can go, appends are refused with event_memory_full.
  std::uint64_t max_event_memory_bytes = std::uint64_t{256} << 20;
};

struct RuntimeInfo {
  std::size_t active_sessions = 0;
  std::int64_t inactivity_timeout_ms = 0;
  std::size_t max_active_sessions = 0;
  std::size_t max_events_per_session = 0;
};

// What every pool reports of itself: its limits and how many sessions are running now.
inline RuntimeInfo runtime_info(const PoolLimits& limits, std::size_t active_sessions) {
  return RuntimeInfo{active_sessions, limits.inactivity_timeout_ms, limits.max_active_sessions,
                     limits.max_events_per_session};
}

// What the pool has done since the process started, and how many sessions it holds in each
// status now: for metrics.
struct PoolCounters {
  std::array<std::size_t, core::kSessionStatusCount>
      sessions_by_status{};  // indexed by core::SessionStatus
  std::uint64_t events_appended = 0;
  std::uint64_t followups_queued = 0;
  std::uint64_t followups_drained = 0;
  std::uint64_t sessions_reaped = 0;  // timed out for inactivity
  // Events held in memory (EventWindow::memory_of), the budget for them, and what was done to
  // keep within it: events let go from memory (still in the store, or dropped by a store that
  // cannot read them back) and appends refused.
  std::uint64_t event_memory_bytes = 0;
  std::uint64_t event_memory_budget_bytes = 0;
  std::uint64_t events_let_go = 0;
  std::uint64_t appends_refused_for_memory = 0;
};

// Every call that changes something returns the store ticket of its last write: the change may
// be acknowledged once the store reports that ticket durable.
struct OpenResult {
  core::SessionSnapshot session;
  bool created = false;  // false when the workspace's running session was reused
  store::Ticket commit_ticket = 0;
};

struct AppendResult {
  core::SessionEvent event;
  core::SessionSnapshot session;
  store::Ticket commit_ticket = 0;
};

struct DrainResult {
  std::vector<std::string> followups;
  core::SessionSnapshot session;
  store::Ticket commit_ticket = 0;
};

struct EndResult {
  core::SessionSnapshot session;
  // When nothing changed (it had already ended): the ticket of the session's latest write.
  store::Ticket commit_ticket = 0;
};

struct Replay {
  core::SessionSnapshot session;
  std::vector<core::SharedEvent> events;  // sequence_id > cursor, oldest first
  // The oldest retained event's sequence id (0 when none is retained): a cursor below it minus
  // one means events were dropped by retention.
  std::uint64_t first_retained_sequence_id = 0;
  std::uint64_t last_sequence_id = 0;     // the newest event's id, retained or not
  std::uint64_t encoded_bytes_total = 0;  // encoded bytes of every event appended so far
};

// Told when a followed session changes: events appended, or the session ended. Called with the
// pool's lock held, so an implementation only records and wakes its reader: no I/O, no calls
// back into the pool.
class SessionFollower {
 public:
  virtual ~SessionFollower() = default;
  // `encoded_bytes_total` is the session's encoded bytes appended so far.
  virtual void notify(std::uint64_t encoded_bytes_total) = 0;
};

struct FollowStart {
  Replay replay;
  // Live events are those after this id (the newest when following began).
  std::uint64_t live_after_sequence_id = 0;
};

struct FollowUpdate {
  std::vector<core::SharedEvent> events;  // after the given id, oldest first
  core::SessionSnapshot session;
  // The session has ended and every event before its end has been given out: nothing follows.
  bool finished = false;
  // Events after the given id were dropped by retention before the follower read them.
  bool events_lost = false;
  // The live feed broke (a shared store's connection was lost): nothing more will arrive on it,
  // so the stream ends and the client resumes from its last id.
  bool feed_lost = false;
  // The events after the given id are no longer in memory but in the store: read them with
  // replay(), which may wait on the disk (so not on an I/O thread: see reads_block()).
  bool in_store = false;
};

// Which sessions `list` returns. Sessions are ordered newest activity first (ties: greater
// session id first); a page starts after the position `after` names.
struct ListQuery {
  std::optional<core::SessionStatus> status;
  std::optional<std::string> workspace_id;
  std::size_t limit = 100;
  struct Position {
    std::int64_t last_activity_unix_ms = 0;
    std::string session_id;
  };
  std::optional<Position> after;
};

struct ListPage {
  std::vector<core::SessionSnapshot> sessions;
  bool more = false;  // sessions past this page match too
};

struct ReapResult {
  std::vector<core::SessionSnapshot> reaped;
  RuntimeInfo runtime;
  store::Ticket commit_ticket = 0;
};

// What the gateway asks of its sessions, whoever holds them: the in-process pool (`SessionPool`,
// over a local store) or a pool shared by several gateways (`RedisSessionPool`). Thread-safe.
// Errors are `core::Error`s; `store_unavailable` means the shared store could not be reached and
// nothing was changed or acknowledged.
class SessionService {
 public:
  // Told of every session that ends (closed, timed out, completed, failed) by this process. May
  // be called with a lock held: it may only record or post work, never call back in.
  using EndListener = std::function<void(const core::SessionSnapshot&)>;

  virtual ~SessionService() = default;

  // Told of each follow-up appended to a session whose worker runs in this process, in order,
  // when follow-ups reach workers through the service (`routes_followups()`). Called from a
  // thread of the service's own with no lock held: it may call back in.
  using FollowupListener =
      std::function<void(const std::string& session_id, const std::string& message)>;

  // Set once before the service is shared between threads.
  virtual void set_end_listener(EndListener listener) = 0;
  // Set once before the service is shared between threads; only used when `routes_followups()`.
  // A sink: the services that route follow-ups keep it (this default ignores it).
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void set_followup_listener(FollowupListener) {}
  // Whether follow-ups reach their session's worker through the followup listener, because the
  // worker may run in another gateway, instead of from the request that posted them.
  virtual bool routes_followups() const { return false; }

  // Returns the workspace's running session, or opens a new one (`with_worker`: a worker process
  // will be started for it).
  virtual OpenResult open(std::string_view workspace_id, bool with_worker) = 0;
  // Removes a session that `open` has just created, as if it never existed (its worker could
  // not be started).
  virtual void discard(std::string_view session_id) = 0;
  virtual core::SessionSnapshot get(std::string_view session_id) = 0;
  virtual AppendResult append_progress(std::string_view session_id, std::string_view message) = 0;
  // append_progress without holding the calling thread, for a pool whose calls wait on the
  // network (`calls_block()`): `done` gets the result, or the error append_progress would
  // throw, once, on a thread of the pool's own. It must return quickly and not throw. Returns
  // false, with nothing done and `done` not called, when the pool cannot make the call this way
  // now (the default: never); the caller then calls append_progress from a thread that may wait.
  // A message append_progress refuses is refused here too, by a throw.
  using AppendDone = std::function<void(std::exception_ptr, AppendResult)>;
  // (By value: a pool that makes the call keeps `done` until it answers.)
  // NOLINTBEGIN(performance-unnecessary-value-param)
  virtual bool append_progress_async(std::string_view /*session_id*/, std::string_view /*message*/,
                                     AppendDone /*done*/) {
    return false;
  }
  // NOLINTEND(performance-unnecessary-value-param)
  // Appends a `followup` event and queues the message for the agent.
  virtual AppendResult append_followup(std::string_view session_id, std::string_view message) = 0;
  // Appends an event of any type, whatever the session's state: facts the gateway records about
  // a session (a worker's output or exit) are kept even after it ended. `data` is the event's
  // structured payload, a serialized JSON object the caller has made (empty: none); it is kept
  // and replayed as given. (A class that overrides this brings the 3-argument form back in with
  // `using SessionService::append_event;`.)
  virtual AppendResult append_event(std::string_view session_id, std::string_view event_type,
                                    std::string_view message, std::string_view data) = 0;
  AppendResult append_event(std::string_view session_id, std::string_view event_type,
                            std::string_view message) {
    return append_event(session_id, event_type, message, {});
  }
  // Appends events of any types in order, as `append_event` would one by one, but in one step
  // where that is cheaper (one round trip to a shared store): for a worker's output.
  struct NewEvent {
    std::string event_type;
    std::string message;
    std::string data = {};  // as append_event's `data`
  };
  virtual void append_events(std::string_view session_id, const std::vector<NewEvent>& events) {
    for (const auto& event : events)
      append_event(session_id, event.event_type, event.message, event.data);
  }
  // Removes up to `limit` queued follow-ups, oldest first. Allowed on ended sessions.
  virtual DrainResult drain_followups(std::string_view session_id, std::size_t limit) = 0;
  // Retained events after `after_sequence_id` (all retained ones when absent), at most `limit`.
  virtual Replay replay(std::string_view session_id, std::optional<std::uint64_t> after_sequence_id,
                        std::size_t limit) = 0;
  // Replays like `replay` and, in the same step, registers `follower` to be told of every later
  // change, so nothing falls between the replay and the live events. An ended session is not
  // followed (it cannot change).
  virtual FollowStart follow(std::string_view session_id,
                             std::optional<std::uint64_t> after_sequence_id, std::size_t limit,
                             std::shared_ptr<SessionFollower> follower) = 0;
  // Up to `max_events` retained events after `after_sequence_id`, with the session's state, for
  // a follower. Never waits on the network: safe on I/O threads.
  virtual FollowUpdate events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                                    std::size_t max_events) = 0;
  // Never waits on the network either.
  virtual void unfollow(std::string_view session_id, const SessionFollower* follower) = 0;

  // Ends a running session as `closed`; an ended session is returned unchanged.
  virtual EndResult close(std::string_view session_id) = 0;
  // Ends a running session with the given terminal status (used by workers: completed, failed).
  virtual EndResult end_session(std::string_view session_id,
                                core::SessionStatus terminal_status) = 0;
  // Times out every running session idle for longer than the inactivity timeout at `now`.
  virtual ReapResult reap(std::int64_t now_unix_ms) = 0;
  ReapResult reap_now() { return reap(now()); }
  // Deletes the sessions that ended longer than the retention ago, with their events; returns
  // how many.
  virtual std::size_t purge_ended(std::int64_t now_unix_ms) = 0;
  // One page of the sessions matching `query`, newest activity first.
  virtual ListPage list(const ListQuery& query) = 0;

  virtual RuntimeInfo runtime() = 0;
  virtual PoolCounters counters() = 0;
  virtual const PoolLimits& limits() const = 0;
  virtual std::int64_t now() const = 0;

  // Acknowledging changes: every call that changes something returns a commit ticket; the change
  // may be acknowledged once `when_durable` reports it (ticket 0: at once).
  virtual store::Ticket durable_ticket() const = 0;
  // Calls `done(true)` once `ticket` is durable, or `done(false)` if it never will be; possibly
  // at once on the calling thread, or later on another thread. `done` must not block.
  virtual void when_durable(store::Ticket ticket, std::function<void(bool)> done) = 0;
  virtual store::StoreInfo store_info() = 0;
  // Whether the store cannot take changes now (failed, or unreachable), for readiness probes.
  virtual bool store_failed() const = 0;
  virtual const metrics::Histogram& commit_seconds() const = 0;

  // Whether calls other than `events_after` and `unfollow` may wait on the network: a caller on
  // an I/O thread then makes them from a thread of its own.
  virtual bool calls_block() const = 0;
  // Whether `replay` and `follow` may wait on the disk (they read events the pool let go of
  // back from its store): a caller on an I/O thread then makes them from a thread of its own.
  virtual bool reads_block() const { return calls_block(); }
};

}  // namespace tau::bridge
