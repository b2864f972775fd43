#include "bridge/session_pool.h"

#include <algorithm>
#include <utility>

#include "bridge/random_id.h"

namespace tau::bridge {

SessionPool::SessionPool(PoolLimits limits, Clock clock, IdGenerator id_generator,
                         EventEncoder encoder)
    : limits_(limits),
      clock_(clock ? std::move(clock) : Clock(system_clock_unix_ms)),
      id_generator_(id_generator ? std::move(id_generator) : IdGenerator(random_session_id)),
      encoder_(std::move(encoder)) {}

OpenResult SessionPool::open(std::string_view workspace_id) {
  const std::string_view workspace = trim_ascii_whitespace(workspace_id);
  if (workspace.empty()) {
    throw BridgeError(BridgeErrorCode::invalid_workspace_id, "workspace_id must not be empty");
  }
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  if (auto running = running_by_workspace_.find(std::string(workspace));
      running != running_by_workspace_.end()) {
    Session& session = sessions_.at(running->second);
    session.snapshot.last_activity_unix_ms = now;
    return OpenResult{snapshot_of(session), false};
  }
  if (running_by_workspace_.size() >= limits_.max_active_sessions) {
    throw BridgeError(BridgeErrorCode::session_limit_reached,
                      "the gateway already runs the maximum of " +
                          std::to_string(limits_.max_active_sessions) + " active sessions");
  }
  std::string session_id = id_generator_();
  while (sessions_.contains(session_id))
    session_id = id_generator_();

  Session session;
  session.snapshot.session_id = session_id;
  session.snapshot.workspace_id = std::string(workspace);
  session.snapshot.status = SessionStatus::running;
  session.snapshot.started_unix_ms = now;
  session.snapshot.last_activity_unix_ms = now;
  running_by_workspace_.emplace(session.snapshot.workspace_id, session_id);
  auto [inserted, _] = sessions_.emplace(session_id, std::move(session));
  return OpenResult{snapshot_of(inserted->second), true};
}

void SessionPool::discard(std::string_view session_id) {
  std::lock_guard lock(mutex_);
  auto found = sessions_.find(std::string(session_id));
  if (found == sessions_.end())
    return;
  auto running = running_by_workspace_.find(found->second.snapshot.workspace_id);
  if (running != running_by_workspace_.end() && running->second == found->first) {
    running_by_workspace_.erase(running);
  }
  sessions_.erase(found);
}

AppendResult SessionPool::append_event(std::string_view session_id, std::string_view event_type,
                                       std::string_view message) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  return append_locked(find_locked(session_id), event_type, message, now);
}

SessionSnapshot SessionPool::get(std::string_view session_id) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  return snapshot_of(find_locked(session_id));
}

AppendResult SessionPool::append_progress(std::string_view session_id, std::string_view message) {
  const std::string_view text = trim_ascii_whitespace(message);
  if (text.empty()) {
    throw BridgeError(BridgeErrorCode::invalid_message, "message must not be empty");
  }
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  return append_locked(find_running_locked(session_id), event_types::progress, text, now);
}

AppendResult SessionPool::append_followup(std::string_view session_id, std::string_view message) {
  const std::string_view text = trim_ascii_whitespace(message);
  if (text.empty()) {
    throw BridgeError(BridgeErrorCode::invalid_message, "message must not be empty");
  }
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_running_locked(session_id);
  session.followups.emplace_back(text);
  return append_locked(session, event_types::followup, text, now);
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
  // An agent polling its queue is alive; draining an ended session changes nothing else.
  if (session.snapshot.status == SessionStatus::running) {
    session.snapshot.last_activity_unix_ms = now;
  }
  result.session = snapshot_of(session);
  return result;
}

Replay SessionPool::replay(std::string_view session_id,
                           std::optional<std::uint64_t> after_sequence_id, std::size_t limit) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  return replay_locked(find_locked(session_id), after_sequence_id, limit);
}

FollowStart SessionPool::follow(std::string_view session_id,
                                std::optional<std::uint64_t> after_sequence_id, std::size_t limit,
                                std::shared_ptr<SessionFollower> follower) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_locked(session_id);
  FollowStart start{replay_locked(session, after_sequence_id, limit), session.last_sequence_id};
  if (session.snapshot.status == SessionStatus::running) {
    session.followers.push_back(std::move(follower));
  }
  return start;
}

FollowUpdate SessionPool::events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                                       std::size_t max_events) {
  std::lock_guard lock(mutex_);
  const Session& session = find_locked(session_id);
  const Replay replay = replay_locked(session, after_sequence_id, max_events);
  FollowUpdate update;
  update.events = replay.events;
  update.session = replay.session;
  update.events_lost = after_sequence_id < replay.last_sequence_id &&
                       after_sequence_id + 1 < replay.first_retained_sequence_id;
  return update;
}

void SessionPool::unfollow(std::string_view session_id, const SessionFollower* follower) {
  std::lock_guard lock(mutex_);
  auto found = sessions_.find(std::string(session_id));
  if (found == sessions_.end())
    return;
  std::erase_if(found->second.followers,
                [follower](const auto& candidate) { return candidate.get() == follower; });
}

SessionSnapshot SessionPool::close(std::string_view session_id) {
  return end_session(session_id, SessionStatus::closed);
}

SessionSnapshot SessionPool::end_session(std::string_view session_id,
                                         SessionStatus terminal_status) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  reap_locked(now);
  Session& session = find_locked(session_id);
  if (session.snapshot.status == SessionStatus::running && is_terminal(terminal_status)) {
    session.snapshot.last_activity_unix_ms = now;
    end_locked(session, terminal_status);
  }
  return snapshot_of(session);
}

ReapResult SessionPool::reap(std::int64_t now_unix_ms) {
  std::lock_guard lock(mutex_);
  ReapResult result;
  result.reaped = reap_locked(now_unix_ms);
  result.runtime = runtime_locked();
  return result;
}

RuntimeInfo SessionPool::runtime() const {
  std::lock_guard lock(mutex_);
  return runtime_locked();
}

SessionPool::Session& SessionPool::find_locked(std::string_view session_id) {
  auto found = sessions_.find(std::string(session_id));
  if (found == sessions_.end()) {
    throw BridgeError(BridgeErrorCode::session_not_found, "no session with this session_id");
  }
  return found->second;
}

SessionPool::Session& SessionPool::find_running_locked(std::string_view session_id) {
  Session& session = find_locked(session_id);
  if (session.snapshot.status != SessionStatus::running) {
    throw BridgeError(
        BridgeErrorCode::session_not_running,
        "session is " + std::string(to_string(session.snapshot.status)) + ", not running");
  }
  return session;
}

AppendResult SessionPool::append_locked(Session& session, std::string_view event_type,
                                        std::string_view message, std::int64_t now) {
  auto retained = std::make_shared<RetainedEvent>();
  SessionEvent& event = retained->event;
  event.sequence_id = ++session.last_sequence_id;
  event.event_type = std::string(event_type);
  event.message = std::string(message);
  event.timestamp_unix_ms = now;
  if (encoder_)
    retained->encoded = encoder_(event);
  session.encoded_bytes_total += retained->encoded.size();
  retained->encoded_bytes_through = session.encoded_bytes_total;
  session.events.push_back(retained);
  while (session.events.size() > limits_.max_events_per_session)
    session.events.pop_front();
  // Events recorded on an ended session (a worker's exit) are not activity.
  if (session.snapshot.status == SessionStatus::running)
    session.snapshot.last_activity_unix_ms = now;
  for (const auto& follower : session.followers)
    follower->notify(session.encoded_bytes_total);
  return AppendResult{event, snapshot_of(session)};
}

void SessionPool::end_locked(Session& session, SessionStatus terminal_status) {
  session.snapshot.status = terminal_status;
  running_by_workspace_.erase(session.snapshot.workspace_id);
  if (end_listener_)
    end_listener_(snapshot_of(session));
  // An ended session never changes again: tell its followers once and let them go.
  for (const auto& follower : session.followers)
    follower->notify(session.encoded_bytes_total);
  session.followers.clear();
}

std::vector<SessionSnapshot> SessionPool::reap_locked(std::int64_t now) {
  std::vector<Session*> stale;
  for (const auto& [workspace, session_id] : running_by_workspace_) {
    Session& session = sessions_.at(session_id);
    if (now - session.snapshot.last_activity_unix_ms > limits_.inactivity_timeout_ms) {
      stale.push_back(&session);
    }
  }
  // Oldest activity first, so a reap's answer does not depend on hash-map order.
  std::sort(stale.begin(), stale.end(), [](const Session* a, const Session* b) {
    return a->snapshot.last_activity_unix_ms < b->snapshot.last_activity_unix_ms;
  });
  std::vector<SessionSnapshot> reaped;
  reaped.reserve(stale.size());
  for (Session* session : stale) {
    end_locked(*session, SessionStatus::timed_out);
    reaped.push_back(snapshot_of(*session));
  }
  return reaped;
}

Replay SessionPool::replay_locked(const Session& session,
                                  std::optional<std::uint64_t> after_sequence_id,
                                  std::size_t limit) const {
  Replay replay;
  replay.session = snapshot_of(session);
  replay.last_sequence_id = session.last_sequence_id;
  replay.encoded_bytes_total = session.encoded_bytes_total;
  if (!session.events.empty()) {
    replay.first_retained_sequence_id = session.events.front()->event.sequence_id;
  }
  const std::uint64_t after = after_sequence_id.value_or(0);
  // Retained ids are consecutive, so the first one past the cursor is found by arithmetic.
  const std::uint64_t skip =
      after < replay.first_retained_sequence_id ? 0 : after - replay.first_retained_sequence_id + 1;
  if (skip < session.events.size()) {
    const auto first = session.events.begin() + static_cast<std::ptrdiff_t>(skip);
    const auto count = std::min<std::size_t>(limit, session.events.size() - skip);
    replay.events.assign(first, first + static_cast<std::ptrdiff_t>(count));
  }
  return replay;
}

RuntimeInfo SessionPool::runtime_locked() const {
  return RuntimeInfo{running_by_workspace_.size(), limits_.inactivity_timeout_ms,
                     limits_.max_active_sessions, limits_.max_events_per_session};
}

SessionSnapshot SessionPool::snapshot_of(const Session& session) {
  SessionSnapshot snapshot = session.snapshot;
  snapshot.queued_followups = session.followups.size();
  return snapshot;
}

}  // namespace tau::bridge
