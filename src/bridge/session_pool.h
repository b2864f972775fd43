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

#include "bridge/event_window.h"
#include "bridge/follower_set.h"
#include "bridge/session_service.h"
#include "core/session_types.h"
#include "store/session_store.h"

namespace tau::bridge {

// The session pool: one running session per workspace, each with its numbered event log and
// FIFO follow-up queue. Thread-safe; every call takes the pool's lock briefly and never does
// I/O under it. Stale running sessions are reaped before any call that looks a session up, so
// callers never observe a session that should already have timed out.
//
// Every change is submitted to the store (in the order it is made) before the call returns.
// Readers (replay, followers) only see events the store has made durable, so a client never
// receives an event that a crash could take back and hand out again under the same id.
class SessionPool final : public SessionService {
 public:
  using IdGenerator = std::function<std::string()>;

  // Without a store, the pool keeps its own in-memory one (nothing survives the process).
  SessionPool(PoolLimits limits, core::Clock clock, IdGenerator id_generator = nullptr,
              core::EventEncoder encoder = nullptr,
              std::shared_ptr<store::SessionStore> store = nullptr);
  ~SessionPool() override;
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // Takes in the sessions the store held at start-up (once, before the pool is shared). Sessions
  // that were running a worker process when the gateway stopped lost it: they end as `failed`
  // with a `gateway.restart` event. Returns the ticket of those writes (0 when none). With
  // `lost_workers`, they stay running and their ids are listed there instead, for the caller to
  // resume (agent sessions) or end.
  store::Ticket restore(std::vector<store::StoredSession> stored_sessions,
                        std::vector<std::string>* lost_workers = nullptr);

  void set_end_listener(EndListener listener) override { end_listener_ = std::move(listener); }

  OpenResult open(std::string_view workspace_id, bool with_worker) override;
  OpenResult open(std::string_view workspace_id) { return open(workspace_id, false); }
  void discard(std::string_view session_id) override;
  core::SessionSnapshot get(std::string_view session_id) override;
  AppendResult append_progress(std::string_view session_id, std::string_view message) override;
  AppendResult append_followup(std::string_view session_id, std::string_view message) override;
  using SessionService::append_event;
  AppendResult append_event(std::string_view session_id, std::string_view event_type,
                            std::string_view message, std::string_view data) override;
  DrainResult drain_followups(std::string_view session_id, std::size_t limit) override;
  Replay replay(std::string_view session_id, std::optional<std::uint64_t> after_sequence_id,
                std::size_t limit) override;
  FollowStart follow(std::string_view session_id, std::optional<std::uint64_t> after_sequence_id,
                     std::size_t limit, std::shared_ptr<SessionFollower> follower) override;
  FollowUpdate events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                            std::size_t max_events) override;
  void unfollow(std::string_view session_id, const SessionFollower* follower) override;
  EndResult close(std::string_view session_id) override;
  EndResult end_session(std::string_view session_id, core::SessionStatus terminal_status) override;
  ReapResult reap(std::int64_t now_unix_ms) override;
  std::size_t purge_ended(std::int64_t now_unix_ms) override;
  ListPage list(const ListQuery& query) override;

  RuntimeInfo runtime() override;
  PoolCounters counters() override;
  const PoolLimits& limits() const override { return limits_; }
  std::int64_t now() const override { return clock_(); }

  store::Ticket durable_ticket() const override { return store_->durable_ticket(); }
  void when_durable(store::Ticket ticket, std::function<void(bool)> done) override {
    store_->when_durable(ticket, std::move(done));
  }
  store::StoreInfo store_info() override { return store_->info(); }
  bool store_failed() const override { return store_->failed(); }
  const metrics::Histogram& commit_seconds() const override { return store_->commit_seconds(); }
  bool calls_block() const override { return false; }
  bool reads_block() const override { return store_->reads_events(); }
  store::SessionStore& store() { return *store_; }

  static constexpr std::string_view kRestartEventType = "gateway.restart";

 private:
  struct Session {
    Session(std::size_t max_events, const core::EventEncoder* encoder)
        : events(max_events, encoder) {}
    core::SessionSnapshot snapshot;
    bool has_worker = false;
    std::int64_t ended_unix_ms = 0;
    EventWindow events;  // its last_id() is the session's newest event id
    // The oldest event the session still has, in `events` or, once let go from memory, in the
    // store: retention moves it forward. Above events.last_id() while it has none.
    std::uint64_t first_retained_id = 1;
    std::uint64_t held_bytes = 0;  // events.retained_bytes() as counted in held_bytes_
    std::deque<std::string> followups;
    // What readers may see: the events and the end the store has made durable.
    VisiblePart released;
    bool wake_pending = false;      // while a commit is being released
    store::Ticket last_ticket = 0;  // of the latest write about this session
    FollowerSet followers;
  };

  // A change waiting for its ticket to become durable before readers may see it.
  struct PendingRelease {
    store::Ticket ticket = 0;
    std::string session_id;
    std::uint64_t sequence_id = 0;
    std::uint64_t encoded_bytes = 0;
    bool ends = false;
  };

  // What a read after a cursor needs: the window, or (once events were let go) the store.
  struct StoredRead {
    std::string session_id;
    std::uint64_t after = 0;
    std::uint64_t through = 0;
    std::uint64_t encoded_bytes = 0;  // the session's total through `through`
  };

  Session& find_locked(std::string_view session_id);
  // Counts the session's window anew after it changed.
  void recount_locked(Session& session);
  // Lets events go from memory until `incoming` more bytes fit in the budget: first whole
  // windows of ended sessions, longest ended first, then (with a store that reads them back)
  // running sessions' durable events, least recently active first. Returns whether they fit.
  bool make_room_locked(std::uint64_t incoming);
  // Throws event_memory_full unless an event with this text fits (make_room_locked).
  void reserve_locked(std::string_view event_type, std::string_view message,
                      std::string_view data = {});
  // Lets the session's events up to `through` go from memory.
  void let_go_locked(Session& session, std::uint64_t through);
  void forget_locked(Session& session);  // before it is erased
  // Set when a reader after `after` needs events the window let go of but the store keeps.
  std::optional<StoredRead> stored_read_locked(const Session& session, std::uint64_t after) const;
  std::vector<core::SharedEvent> read_stored(const StoredRead& read, std::size_t limit) const;
  std::uint64_t first_retained_locked(const Session& session) const;
  Session& find_running_locked(std::string_view session_id);
  AppendResult append_locked(Session& session, std::string_view event_type,
                             std::string_view message, std::int64_t now,
                             std::optional<std::string> queued_followup = std::nullopt,
                             std::string_view data = {});
  store::Ticket end_locked(Session& session, core::SessionStatus terminal_status, std::int64_t now);
  std::vector<core::SessionSnapshot> reap_locked(std::int64_t now, store::Ticket* ticket = nullptr);
  RuntimeInfo runtime_locked() const;
  Replay replay_locked(const Session& session, std::optional<std::uint64_t> after_sequence_id,
                       std::size_t limit) const;
  Session& insert_locked(core::SessionSnapshot snapshot);
  static core::SessionSnapshot snapshot_of(const Session& session);
  static store::SessionRecord record_of(const Session& session);
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
  const core::Clock clock_;
  const IdGenerator id_generator_;
  const core::EventEncoder encoder_;
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
  // Ended sessions whose windows hold events, by when they ended: the first to let go.
  std::set<std::pair<std::int64_t, Session*>> ended_windows_;
  std::uint64_t held_bytes_ = 0;  // every window's retained_bytes()
  PoolCounters counters_;
};

}  // namespace tau::bridge
