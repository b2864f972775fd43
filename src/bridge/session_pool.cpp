#include "bridge/session_pool.h"

#include <algorithm>
#include <utility>

#include "core/errors.h"
#include "core/random_id.h"
#include "store/memory_store.h"

namespace tau::bridge {

SessionPool::SessionPool(PoolLimits limits, core::Clock clock, IdGenerator id_generator,
                         core::EventEncoder encoder, std::shared_ptr<store::SessionStore> store)
    : limits_(limits),
      clock_(clock ? std::move(clock) : core::Clock(core::system_clock_unix_ms)),
      id_generator_(id_generator ? std::move(id_generator) : IdGenerator(core::random_session_id)),
      encoder_(std::move(encoder)),
      store_(store ? std::move(store) : std::make_shared<store::MemoryStore>()) {
  store_->set_durable_listener([this](store::Ticket ticket) { on_durable(ticket); });
}

SessionPool::~SessionPool() {
  // The writer must not call back into a pool that is going away.
  store_->flush();
  store_->set_durable_listener(nullptr);
}

store::Ticket SessionPool::restore(std::vector<store::StoredSession> stored_sessions,
                                   std::vector<std::string>* lost_workers_out) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  std::vector<Session*> lost_workers;
  for (auto& stored : stored_sessions) {
    Session& restored = insert_locked(std::move(stored.record.snapshot));
    restored.has_worker = stored.record.has_worker;
    restored.ended_unix_ms = stored.record.ended_unix_ms;
    for (auto& event : stored.events)
      restored.events.append(std::move(event));
    restored.events.advance_to(stored.record.last_sequence_id);
    if (!restored.events.empty())
      restored.first_retained_id = restored.events.first_id();
    else if (!stored.events_loaded && stored.first_stored_sequence_id > 0 &&
             stored.last_stored_sequence_id == restored.events.last_id())
      restored.first_retained_id = stored.first_stored_sequence_id;  // on disk only
    // (Stored events that end before the session's last id are not consecutive with what comes
    // next, as in a loaded window after advance_to: readers get a gap instead.)
    else
      restored.first_retained_id = restored.events.last_id() + 1;
    recount_locked(restored);
    if (core::is_terminal(restored.snapshot.status) && !restored.events.empty())
      ended_windows_.emplace(restored.ended_unix_ms, &restored);
    restored.followups.assign(std::make_move_iterator(stored.followups.begin()),
                              std::make_move_iterator(stored.followups.end()));
    // Everything loaded is durable by definition.
    restored.released = everything(restored.events, core::is_terminal(restored.snapshot.status));
    if (restored.snapshot.status == core::SessionStatus::running) {
      start_running_locked(restored);
      if (restored.has_worker)
        lost_workers.push_back(&restored);
    }
  }
  store::Ticket ticket = 0;
  if (lost_workers_out) {
    for (Session* session : lost_workers)
      lost_workers_out->push_back(session->snapshot.session_id);
    lost_workers.clear();
  }
  for (Session* session : lost_workers) {
    append_locked(*session, kRestartEventType,
                  "the gateway restarted; the session's worker process was lost", now);
    ticket = end_locked(*session, core::SessionStatus::failed, now);
  }
  make_room_locked(0);
  return ticket;
}

OpenResult SessionPool::open(std::string_view workspace_id, bool with_worker) {
  const std::string_view workspace = core::checked_workspace_id(workspace_id);
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  if (auto running = running_by_workspace_.find(std::string(workspace));
      running != running_by_workspace_.end()) {
    Session& session = sessions_.at(running->second);
    set_activity_locked(session, now);
    const auto ticket =
        submit_locked(&session, store::SaveSession{record_of(session)}, std::nullopt);
    return OpenResult{snapshot_of(session), false, ticket};
  }
  if (running_by_workspace_.size() >= limits_.max_active_sessions) {
    throw core::errors::session_limit_reached(limits_.max_active_sessions);
  }
  std::string session_id = id_generator_();
  while (sessions_.contains(session_id))
    session_id = id_generator_();

  core::SessionSnapshot snapshot;
  snapshot.session_id = std::move(session_id);
  snapshot.workspace_id = std::string(workspace);
  snapshot.status = core::SessionStatus::running;
  snapshot.started_unix_ms = now;
  snapshot.last_activity_unix_ms = now;
  Session& session = insert_locked(std::move(snapshot));
  session.has_worker = with_worker;
  start_running_locked(session);
  const auto ticket = submit_locked(&session, store::SaveSession{record_of(session)}, std::nullopt);
  return OpenResult{snapshot_of(session), true, ticket};
}

SessionPool::Session& SessionPool::insert_locked(core::SessionSnapshot snapshot) {
  std::string id = snapshot.session_id;
  auto [inserted, _] =
      sessions_.try_emplace(std::move(id), limits_.max_events_per_session, &encoder_);
  Session& session = inserted->second;
  session.snapshot = std::move(snapshot);
  ++counters_.sessions_by_status[core::status_index(session.snapshot.status)];
  return session;
}

void SessionPool::discard(std::string_view session_id) {
  std::lock_guard lock(mutex_);
  auto found = sessions_.find(std::string(session_id));
  if (found == sessions_.end())
    return;
  if (found->second.snapshot.status == core::SessionStatus::running)
    stop_running_locked(found->second);
  forget_locked(found->second);
  submit_locked(nullptr, store::DeleteSession{found->first}, std::nullopt);
  --counters_.sessions_by_status[core::status_index(found->second.snapshot.status)];
  sessions_.erase(found);
}

AppendResult SessionPool::append_event(std::string_view session_id, std::string_view event_type,
                                       std::string_view message, std::string_view data) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  Session& session = find_locked(session_id);
  reserve_locked(event_type, message, data);
  return append_locked(session, event_type, message, now, std::nullopt, data);
}

core::SessionSnapshot SessionPool::get(std::string_view session_id) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  return snapshot_of(find_locked(session_id));
}

AppendResult SessionPool::append_progress(std::string_view session_id, std::string_view message) {
  const std::string_view text = core::checked_message(message);
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_running_locked(session_id);
  reserve_locked(core::event_types::progress, text);
  return append_locked(session, core::event_types::progress, text, now);
}

AppendResult SessionPool::append_followup(std::string_view session_id, std::string_view message) {
  const std::string_view text = core::checked_message(message);
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_running_locked(session_id);
  reserve_locked(core::event_types::followup, text);
  session.followups.emplace_back(text);
  ++counters_.followups_queued;
  return append_locked(session, core::event_types::followup, text, now, std::string(text));
}

DrainResult SessionPool::drain_followups(std::string_view session_id, std::size_t limit) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_locked(session_id);
  DrainResult result;
  const std::size_t count = std::min(limit, session.followups.size());
  result.followups.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    result.followups.push_back(std::move(session.followups.front()));
    session.followups.pop_front();
  }
  counters_.followups_drained += count;
  // An agent polling its queue is alive; draining an ended session changes nothing else.
  set_activity_locked(session, now);
  result.session = snapshot_of(session);
  result.commit_ticket =
      submit_locked(&session, store::DrainFollowups{record_of(session), count}, std::nullopt);
  return result;
}

Replay SessionPool::replay(std::string_view session_id,
                           std::optional<std::uint64_t> after_sequence_id, std::size_t limit) {
  const std::int64_t now = clock_();
  std::optional<StoredRead> stored;
  Replay replay;
  {
    std::lock_guard lock(mutex_);
    reap_locked(now);
    const Session& session = find_locked(session_id);
    stored = stored_read_locked(session, after_sequence_id.value_or(0));
    replay = replay_locked(session, after_sequence_id, stored ? 0 : limit);
  }
  // Outside the lock: the store's read waits on the disk.
  if (stored)
    replay.events = read_stored(*stored, limit);
  return replay;
}

FollowStart SessionPool::follow(std::string_view session_id,
                                std::optional<std::uint64_t> after_sequence_id, std::size_t limit,
                                std::shared_ptr<SessionFollower> follower) {
  const std::int64_t now = clock_();
  std::optional<StoredRead> stored;
  FollowStart start;
  {
    std::lock_guard lock(mutex_);
    reap_locked(now);
    Session& session = find_locked(session_id);
    stored = stored_read_locked(session, after_sequence_id.value_or(0));
    start = FollowStart{replay_locked(session, after_sequence_id, stored ? 0 : limit),
                        session.released.through_sequence_id};
    if (!session.released.ended)
      session.followers.add(std::move(follower));
  }
  // Outside the lock: the store's read waits on the disk. What is released meanwhile reaches
  // the follower as live events.
  if (stored)
    start.replay.events = read_stored(*stored, limit);
  return start;
}

FollowUpdate SessionPool::events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                                       std::size_t max_events) {
  std::lock_guard lock(mutex_);
  const Session& session = find_locked(session_id);
  if (after_sequence_id < session.released.through_sequence_id &&
      after_sequence_id + 1 < session.first_retained_id) {
    // Dropped by retention (from the store too): the follower must start over, with a gap.
    FollowUpdate update;
    update.session = snapshot_of(session);
    update.events_lost = true;
    return update;
  }
  if (stored_read_locked(session, after_sequence_id)) {
    // Never read here, on the follower's I/O thread: it reads them with replay() instead.
    FollowUpdate update;
    update.session = snapshot_of(session);
    update.in_store = true;
    return update;
  }
  return follow_update(session.events, session.released, snapshot_of(session), after_sequence_id,
                       max_events);
}

void SessionPool::unfollow(std::string_view session_id, const SessionFollower* follower) {
  std::lock_guard lock(mutex_);
  auto found = sessions_.find(std::string(session_id));
  if (found == sessions_.end())
    return;
  found->second.followers.remove(follower);
}

EndResult SessionPool::close(std::string_view session_id) {
  return end_session(session_id, core::SessionStatus::closed);
}

EndResult SessionPool::end_session(std::string_view session_id,
                                   core::SessionStatus terminal_status) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_locked(session_id);
  EndResult result;
  if (session.snapshot.status == core::SessionStatus::running &&
      core::is_terminal(terminal_status)) {
    set_activity_locked(session, now);
    result.commit_ticket = end_locked(session, terminal_status, now);
  } else {
    // Nothing changes, but the state it answers must be durable too: an end another request
    // made a moment ago may not be yet.
    result.commit_ticket = session.last_ticket;
  }
  result.session = snapshot_of(session);
  return result;
}

ReapResult SessionPool::reap(std::int64_t now_unix_ms) {
  std::lock_guard lock(mutex_);
  ReapResult result;
  result.reaped = reap_locked(now_unix_ms, &result.commit_ticket);
  result.runtime = runtime_locked();
  return result;
}

std::size_t SessionPool::purge_ended(std::int64_t now_unix_ms) {
  std::lock_guard lock(mutex_);
  std::size_t purged = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& session = it->second;
    // Only once its end is durable: a follower may still be reading up to it otherwise.
    if (session.released.ended &&
        now_unix_ms - session.ended_unix_ms > limits_.session_retention_ms) {
      submit_locked(nullptr, store::DeleteSession{it->first}, std::nullopt);
      --counters_.sessions_by_status[core::status_index(session.snapshot.status)];
      forget_locked(it->second);
      it = sessions_.erase(it);
      ++purged;
    } else {
      ++it;
    }
  }
  return purged;
}

ListPage SessionPool::list(const ListQuery& query) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  // Newest activity first; the session id breaks ties so the order (and a cursor) is total.
  auto before = [](std::int64_t a_activity, const std::string& a_id, std::int64_t b_activity,
                   const std::string& b_id) {
    return a_activity != b_activity ? a_activity > b_activity : a_id > b_id;
  };
  std::vector<const Session*> matching;
  for (const auto& [id, session] : sessions_) {
    const core::SessionSnapshot& snapshot = session.snapshot;
    if (query.status && snapshot.status != *query.status)
      continue;
    if (query.workspace_id && snapshot.workspace_id != *query.workspace_id)
      continue;
    if (query.after && !before(query.after->last_activity_unix_ms, query.after->session_id,
                               snapshot.last_activity_unix_ms, snapshot.session_id)) {
      continue;
    }
    matching.push_back(&session);
  }
  const std::size_t count = std::min(query.limit, matching.size());
  std::partial_sort(matching.begin(), matching.begin() + static_cast<std::ptrdiff_t>(count),
                    matching.end(), [&](const Session* a, const Session* b) {
                      return before(a->snapshot.last_activity_unix_ms, a->snapshot.session_id,
                                    b->snapshot.last_activity_unix_ms, b->snapshot.session_id);
                    });
  ListPage page;
  page.more = matching.size() > count;
  page.sessions.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    page.sessions.push_back(snapshot_of(*matching[i]));
  return page;
}

RuntimeInfo SessionPool::runtime() {
  std::lock_guard lock(mutex_);
  return runtime_locked();
}

SessionPool::Session& SessionPool::find_locked(std::string_view session_id) {
  auto found = sessions_.find(std::string(session_id));
  if (found == sessions_.end()) {
    throw core::errors::session_not_found();
  }
  return found->second;
}

SessionPool::Session& SessionPool::find_running_locked(std::string_view session_id) {
  Session& session = find_locked(session_id);
  if (session.snapshot.status != core::SessionStatus::running) {
    throw core::errors::session_not_running(core::to_string(session.snapshot.status));
  }
  return session;
}

AppendResult SessionPool::append_locked(Session& session, std::string_view event_type,
                                        std::string_view message, std::int64_t now,
                                        std::optional<std::string> queued_followup,
                                        std::string_view data) {
  core::SessionEvent event;
  event.sequence_id = session.events.last_id() + 1;
  event.event_type = std::string(event_type);
  event.message = std::string(message);
  event.timestamp_unix_ms = now;
  event.data = std::string(data);
  const core::SharedEvent retained = session.events.append(event);
  ++counters_.events_appended;
  // Retention, whether the older events are in the window or only in the store.
  if (event.sequence_id >= limits_.max_events_per_session) {
    session.first_retained_id =
        std::max(session.first_retained_id, event.sequence_id + 1 - limits_.max_events_per_session);
  }
  recount_locked(session);
  if (core::is_terminal(session.snapshot.status))
    ended_windows_.emplace(session.ended_unix_ms, &session);
  set_activity_locked(session, now);
  const std::uint64_t oldest_retained = session.first_retained_id;
  const store::Ticket ticket = submit_locked(
      &session,
      store::AppendEvent{record_of(session), event, oldest_retained, std::move(queued_followup)},
      PendingRelease{0, session.snapshot.session_id, event.sequence_id,
                     retained->encoded_bytes_through, false});
  return AppendResult{std::move(event), snapshot_of(session), ticket};
}

store::Ticket SessionPool::end_locked(Session& session, core::SessionStatus terminal_status,
                                      std::int64_t now) {
  --counters_.sessions_by_status[core::status_index(session.snapshot.status)];
  ++counters_.sessions_by_status[core::status_index(terminal_status)];
  session.snapshot.status = terminal_status;
  session.ended_unix_ms = now;
  stop_running_locked(session);
  if (!session.events.empty())
    ended_windows_.emplace(session.ended_unix_ms, &session);
  if (end_listener_)
    end_listener_(snapshot_of(session));
  return submit_locked(&session, store::SaveSession{record_of(session)},
                       PendingRelease{0, session.snapshot.session_id, session.events.last_id(),
                                      session.events.encoded_bytes_total(), true});
}

store::Ticket SessionPool::submit_locked(Session* session, store::StoreWrite write,
                                         std::optional<PendingRelease> release) {
  const store::Ticket ticket = store_->submit(std::move(write));
  if (session)
    session->last_ticket = ticket;
  if (!release)
    return ticket;
  release->ticket = ticket;
  if (store_->durable_ticket() >= ticket) {
    // Already durable (always so for the memory store): readers may see it now.
    if (auto found = sessions_.find(release->session_id); found != sessions_.end()) {
      release_locked(found->second, *release);
      notify_followers_locked(found->second);
    }
  } else {
    pending_releases_.push_back(std::move(*release));
  }
  return ticket;
}

void SessionPool::release_locked(Session& session, const PendingRelease& release) {
  VisiblePart& released = session.released;
  released.through_sequence_id = std::max(released.through_sequence_id, release.sequence_id);
  released.encoded_bytes = std::max(released.encoded_bytes, release.encoded_bytes);
  if (release.ends)
    released.ended = true;
}

void SessionPool::notify_followers_locked(Session& session) {
  session.followers.notify_all(session.released.encoded_bytes);
  // An ended session never changes again: its followers were told once and are let go.
  if (session.released.ended)
    session.followers.clear();
}

void SessionPool::on_durable(store::Ticket ticket) {
  std::lock_guard lock(mutex_);
  // One commit usually holds several changes per session: wake each follower once for all.
  std::vector<Session*> changed;
  while (!pending_releases_.empty() && pending_releases_.front().ticket <= ticket) {
    const PendingRelease& release = pending_releases_.front();
    if (auto found = sessions_.find(release.session_id); found != sessions_.end()) {
      release_locked(found->second, release);
      if (!found->second.wake_pending) {
        found->second.wake_pending = true;
        changed.push_back(&found->second);
      }
    }
    pending_releases_.pop_front();
  }
  for (Session* session : changed) {
    session->wake_pending = false;
    notify_followers_locked(*session);
  }
}

void SessionPool::start_running_locked(Session& session) {
  running_by_workspace_.emplace(session.snapshot.workspace_id, session.snapshot.session_id);
  running_by_activity_.emplace(session.snapshot.last_activity_unix_ms, &session);
}

void SessionPool::stop_running_locked(Session& session) {
  running_by_workspace_.erase(session.snapshot.workspace_id);
  running_by_activity_.erase({session.snapshot.last_activity_unix_ms, &session});
}

void SessionPool::set_activity_locked(Session& session, std::int64_t now) {
  // Only running sessions have activity: what is recorded after the end (a worker's exit) or
  // drained from an ended session is not.
  if (session.snapshot.status != core::SessionStatus::running)
    return;
  running_by_activity_.erase({session.snapshot.last_activity_unix_ms, &session});
  session.snapshot.last_activity_unix_ms = now;
  running_by_activity_.emplace(now, &session);
}

std::vector<core::SessionSnapshot> SessionPool::reap_locked(std::int64_t now,
                                                            store::Ticket* ticket) {
  // The index is ordered by activity: only its stale front is looked at, oldest first.
  std::vector<Session*> stale;
  for (const auto& [activity, session] : running_by_activity_) {
    if (now - activity <= limits_.inactivity_timeout_ms)
      break;
    stale.push_back(session);
  }
  std::vector<core::SessionSnapshot> reaped;
  reaped.reserve(stale.size());
  counters_.sessions_reaped += stale.size();
  for (Session* session : stale) {
    const store::Ticket end_ticket = end_locked(*session, core::SessionStatus::timed_out, now);
    if (ticket)
      *ticket = end_ticket;
    reaped.push_back(snapshot_of(*session));
  }
  return reaped;
}

Replay SessionPool::replay_locked(const Session& session,
                                  std::optional<std::uint64_t> after_sequence_id,
                                  std::size_t limit) const {
  // Readers see the released (durable) part of the log only.
  Replay replay =
      replay_of(session.events, session.released, snapshot_of(session), after_sequence_id, limit);
  replay.first_retained_sequence_id = first_retained_locked(session);
  return replay;
}

std::uint64_t SessionPool::first_retained_locked(const Session& session) const {
  return session.events.last_id() == 0 ? 0 : session.first_retained_id;
}

void SessionPool::recount_locked(Session& session) {
  held_bytes_ = held_bytes_ - session.held_bytes + session.events.retained_bytes();
  session.held_bytes = session.events.retained_bytes();
}

void SessionPool::forget_locked(Session& session) {
  held_bytes_ -= session.held_bytes;
  session.held_bytes = 0;
  ended_windows_.erase({session.ended_unix_ms, &session});
}

void SessionPool::let_go_locked(Session& session, std::uint64_t through) {
  const std::size_t before = session.events.size();
  session.events.let_go_through(through);
  counters_.events_let_go += before - session.events.size();
  // Without a store to read them back from, they are gone: readers get a gap.
  if (!store_->reads_events()) {
    session.first_retained_id =
        std::max(session.first_retained_id, std::min(through, session.events.last_id()) + 1);
  }
  recount_locked(session);
}

bool SessionPool::make_room_locked(std::uint64_t incoming) {
  const auto fits = [&] { return held_bytes_ + incoming <= limits_.max_event_memory_bytes; };
  for (auto it = ended_windows_.begin(); it != ended_windows_.end() && !fits();) {
    Session& session = *it->second;
    ++it;  // before the entry may go
    // Only what is durable: what is not yet stays until it is.
    let_go_locked(session, session.released.through_sequence_id);
    if (session.events.empty())
      ended_windows_.erase({session.ended_unix_ms, &session});
  }
  if (store_->reads_events()) {
    for (const auto& [activity, session] : running_by_activity_) {
      if (fits())
        break;
      let_go_locked(*session, session->released.through_sequence_id);
    }
  }
  return fits();
}

void SessionPool::reserve_locked(std::string_view event_type, std::string_view message,
                                 std::string_view data) {
  // The encoding is not made yet: about the message and the data again, JSON escaping aside.
  core::RetainedEvent estimate;
  estimate.event.event_type = std::string(event_type);
  const std::uint64_t bytes =
      EventWindow::memory_of(estimate) + 2 * (message.size() + data.size()) + 64;
  if (!make_room_locked(bytes)) {
    ++counters_.appends_refused_for_memory;
    throw core::errors::event_memory_full(limits_.max_event_memory_bytes);
  }
}

std::optional<SessionPool::StoredRead> SessionPool::stored_read_locked(const Session& session,
                                                                       std::uint64_t after) const {
  if (!store_->reads_events())
    return std::nullopt;
  const std::uint64_t through = session.released.through_sequence_id;
  const std::uint64_t in_window =
      session.events.empty() ? session.events.last_id() + 1 : session.events.first_id();
  const std::uint64_t from = std::max(after, session.first_retained_id - 1);
  // Nothing to read, or the window holds the next event.
  if (from >= through || from + 1 >= in_window)
    return std::nullopt;
  return StoredRead{session.snapshot.session_id, from, through, session.released.encoded_bytes};
}

std::vector<core::SharedEvent> SessionPool::read_stored(const StoredRead& read,
                                                        std::size_t limit) const {
  std::vector<core::SessionEvent> events;
  try {
    events = store_->read_events(read.session_id, read.after, read.through, limit);
  } catch (const store::StoreError& error) {
    throw core::errors::store_unavailable(error.what());
  }
  std::vector<core::SharedEvent> shared;
  shared.reserve(events.size());
  for (auto& event : events) {
    auto retained = std::make_shared<core::RetainedEvent>();
    retained->event = std::move(event);
    if (encoder_)
      retained->encoded = encoder_(retained->event);
    // An upper bound (the bytes of the events in between are not counted here): a follower's
    // backlog is never overstated, so it is never cut off for it.
    retained->encoded_bytes_through = read.encoded_bytes;
    shared.push_back(std::move(retained));
  }
  return shared;
}

PoolCounters SessionPool::counters() {
  std::lock_guard lock(mutex_);
  PoolCounters counters = counters_;
  counters.event_memory_bytes = held_bytes_;
  counters.event_memory_budget_bytes = limits_.max_event_memory_bytes;
  return counters;
}

RuntimeInfo SessionPool::runtime_locked() const {
  return runtime_info(limits_, running_by_workspace_.size());
}

store::SessionRecord SessionPool::record_of(const Session& session) {
  return store::SessionRecord{session.snapshot, session.has_worker, session.ended_unix_ms,
                              session.events.last_id()};
}

core::SessionSnapshot SessionPool::snapshot_of(const Session& session) {
  core::SessionSnapshot snapshot = session.snapshot;
  snapshot.queued_followups = session.followups.size();
  return snapshot;
}

}  // namespace tau::bridge
