#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bridge/session_types.h"
#include "store/session_store.h"

namespace tau::bridge {

struct PoolLimits {
  std::int64_t inactivity_timeout_ms = 600000;
  std::size_t max_active_sessions = 16;
  std::size_t max_events_per_session = 256;
  // Ended sessions are kept this long after they end, then deleted with their events.
  std::int64_t session_retention_ms = 168LL * 3600 * 1000;
};

struct RuntimeInfo {
  std::size_t active_sessions = 0;
  std::int64_t inactivity_timeout_ms = 0;
  std::size_t max_active_sessions = 0;
  std::size_t max_events_per_session = 0;
};

// What the pool has done since the process started, and how many sessions it holds in each
// status now: for metrics.
struct PoolCounters {
  std::array<std::size_t, kSessionStatusCount> sessions_by_status{};  // indexed by SessionStatus
  std::uint64_t events_appended = 0;
  std::uint64_t followups_queued = 0;
  std::uint64_t followups_drained = 0;
  std::uint64_t sessions_reaped = 0;  // timed out for inactivity
};

// Every call that changes something returns the store ticket of its last write: the change may
// be acknowledged once the store reports that ticket durable.
struct OpenResult {
  SessionSnapshot session;
  bool created = false;  // false when the workspace's running session was reused
  store::Ticket commit_ticket = 0;
};

struct AppendResult {
  SessionEvent event;
  SessionSnapshot session;
  store::Ticket commit_ticket = 0;
};

struct DrainResult {
  std::vector<std::string> followups;
  SessionSnapshot session;
  store::Ticket commit_ticket = 0;
};

struct EndResult {
  SessionSnapshot session;
  // When nothing changed (it had already ended): the ticket of the session's latest write.
  store::Ticket commit_ticket = 0;
};

struct Replay {
  SessionSnapshot session;
  std::vector<SharedEvent> events;  // sequence_id > cursor, oldest first
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
  std::vector<SharedEvent> events;  // after the given id, oldest first
  SessionSnapshot session;
  // The session has ended and every event before its end has been given out: nothing follows.
  bool finished = false;
  // Events after the given id were dropped by retention before the follower read them.
  bool events_lost = false;
};

// Which sessions `list` returns. Sessions are ordered newest activity first (ties: greater
// session id first); a page starts after the position `after` names.
struct ListQuery {
  std::optional<SessionStatus> status;
  std::optional<std::string> workspace_id;
  std::size_t limit = 100;
  struct Position {
    std::int64_t last_activity_unix_ms = 0;
    std::string session_id;
  };
  std::optional<Position> after;
};

struct ListPage {
  std::vector<SessionSnapshot> sessions;
  bool more = false;  // sessions past this page match too
};

struct ReapResult {
  std::vector<SessionSnapshot> reaped;
  RuntimeInfo runtime;
  store::Ticket commit_ticket = 0;
};

// The session pool: one running session per workspace, each with its numbered event log and
// FIFO follow-up queue. Thread-safe; every call takes the pool's lock briefly and never does
// I/O under it. Stale running sessions are reaped before any call that looks a session up, so
// callers never observe a session that should already have timed out.
//
// Every change is submitted to the store (in the order it is made) before the call returns.
// Readers (replay, followers) only see events the store has made durable, so a client never
// receives an event that a crash could take back and hand out again under the same id.
class SessionPool {
 public:
  using IdGenerator = std::function<std::string()>;
  // Told of every session that ends (closed, timed out, completed, failed), with the pool's lock
  // held: it may only record or post work, never call back into the pool.
  using EndListener = std::function<void(const SessionSnapshot&)>;

  // Without a store, the pool keeps its own in-memory one (nothing survives the process).
  SessionPool(PoolLimits limits, Clock clock, IdGenerator id_generator = nullptr,
              EventEncoder encoder = nullptr, std::shared_ptr<store::SessionStore> store = nullptr);
  ~SessionPool();
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // Takes in the sessions the store held at start-up (once, before the pool is shared). Sessions
  // that were running a worker process when the gateway stopped lost it: they end as `failed`
  // with a `gateway.restart` event. Returns the ticket of those writes (0 when none).
  store::Ticket restore(std::vector<store::StoredSession> stored_sessions);

  // Set once before the pool is shared between threads.
  void set_end_listener(EndListener listener) { end_listener_ = std::move(listener); }

  // Returns the workspace's running session, or opens a new one (`with_worker`: a worker process
  // will be started for it).
  OpenResult open(std::string_view workspace_id, bool with_worker = false);
  // Removes a session that `open` has just created, as if it never existed (its worker could
  // not be started).
  void discard(std::string_view session_id);
  SessionSnapshot get(std::string_view session_id);
  AppendResult append_progress(std::string_view session_id, std::string_view message);
  // Appends a `followup` event and queues the message for the agent.
  AppendResult append_followup(std::string_view session_id, std::string_view message);
  // Appends an event of any type, whatever the session's state: facts the gateway records about
  // a session (a worker's output or exit) are kept even after it ended.
  AppendResult append_event(std::string_view session_id, std::string_view event_type,
                            std::string_view message);
  // Removes up to `limit` queued follow-ups, oldest first. Allowed on ended sessions.
  DrainResult drain_followups(std::string_view session_id, std::size_t limit);
  // Retained events after `after_sequence_id` (all retained ones when absent), at most `limit`.
  Replay replay(std::string_view session_id, std::optional<std::uint64_t> after_sequence_id,
                std::size_t limit);
  // Replays like `replay` and, in the same step, registers `follower` to be told of every later
  // change, so nothing falls between the replay and the live events. An ended session is not
  // followed (it cannot change).
  FollowStart follow(std::string_view session_id, std::optional<std::uint64_t> after_sequence_id,
                     std::size_t limit, std::shared_ptr<SessionFollower> follower);
  // Up to `max_events` retained events after `after_sequence_id`, with the session's state.
  FollowUpdate events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                            std::size_t max_events);
  void unfollow(std::string_view session_id, const SessionFollower* follower);

  // Ends a running session as `closed`; an ended session is returned unchanged.
  EndResult close(std::string_view session_id);
  // Ends a running session with the given terminal status (used by workers: completed, failed).
  EndResult end_session(std::string_view session_id, SessionStatus terminal_status);
  // Times out every running session idle for longer than the inactivity timeout at `now`.
  ReapResult reap(std::int64_t now_unix_ms);
  ReapResult reap_now() { return reap(clock_()); }
  // Deletes the sessions that ended longer than the retention ago, with their events; returns
  // how many.
  std::size_t purge_ended(std::int64_t now_unix_ms);

  // One page of the sessions matching `query`, newest activity first.
  ListPage list(const ListQuery& query);

  RuntimeInfo runtime() const;
  PoolCounters counters() const;
  const PoolLimits& limits() const { return limits_; }
  std::int64_t now() const { return clock_(); }
  store::SessionStore& store() { return *store_; }

  static constexpr std::string_view kRestartEventType = "gateway.restart";

 private:
  struct Session {
    SessionSnapshot snapshot;
    bool has_worker = false;
    std::int64_t ended_unix_ms = 0;
    std::deque<SharedEvent> events;
    std::deque<std::string> followups;
    std::uint64_t last_sequence_id = 0;
    std::uint64_t encoded_bytes_total = 0;
    // What readers may see: events up to this id are durable, and so is the end when set.
    std::uint64_t released_sequence_id = 0;
    std::uint64_t released_encoded_bytes = 0;
    bool end_released = false;
    bool wake_pending = false;      // while a commit is being released
    store::Ticket last_ticket = 0;  // of the latest write about this session
    std::vector<std::shared_ptr<SessionFollower>> followers;
  };

  // A change waiting for its ticket to become durable before readers may see it.
  struct PendingRelease {
    store::Ticket ticket = 0;
    std::string session_id;
    std::uint64_t sequence_id = 0;
    std::uint64_t encoded_bytes = 0;
    bool ends = false;
  };

  Session& find_locked(std::string_view session_id);
  Session& find_running_locked(std::string_view session_id);
  AppendResult append_locked(Session& session, std::string_view event_type,
                             std::string_view message, std::int64_t now,
                             std::optional<std::string> queued_followup = std::nullopt);
  store::Ticket end_locked(Session& session, SessionStatus terminal_status, std::int64_t now);
  std::vector<SessionSnapshot> reap_locked(std::int64_t now, store::Ticket* ticket = nullptr);
  RuntimeInfo runtime_locked() const;
  Replay replay_locked(const Session& session, std::optional<std::uint64_t> after_sequence_id,
                       std::size_t limit) const;
  static SessionSnapshot snapshot_of(const Session& session);
  static store::SessionRecord record_of(const Session& session);
  SharedEvent retain(Session& session, SessionEvent event) const;
  // Submits `write` (about `session`, when it is not a delete); its effect on readers
  // (`release`) applies once it is durable.
  store::Ticket submit_locked(Session* session, store::StoreWrite write,
                              std::optional<PendingRelease> release);
  void release_locked(Session& session, const PendingRelease& release);
  void notify_followers_locked(Session& session);
  void start_running_locked(Session& session);
  void stop_running_locked(Session& session);
  // Sets a running session's last activity (and keeps the activity index in order).
  void set_activity_locked(Session& session, std::int64_t now);
  void on_durable(store::Ticket ticket);

  const PoolLimits limits_;
  const Clock clock_;
  const IdGenerator id_generator_;
  const EventEncoder encoder_;
  const std::shared_ptr<store::SessionStore> store_;
  EndListener end_listener_;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Session> sessions_;
  // workspace_id -> session_id of its running session; its size is the active count.
  std::unordered_map<std::string, std::string> running_by_workspace_;
  // Running sessions by last activity, so a reap looks only at the stale ones. (Sessions are
  // nodes of `sessions_`, whose addresses never change.)
  std::set<std::pair<std::int64_t, Session*>> running_by_activity_;
  std::deque<PendingRelease> pending_releases_;  // in ticket order
  PoolCounters counters_;
};

}  // namespace tau::bridge
