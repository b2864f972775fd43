#include "store/memory_store.h"

namespace tau::store {

StoredState MemoryStore::load_sessions(LoadScope /*scope*/) {
  std::lock_guard lock(mutex_);
  StoredState state;
  state.sessions.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) {
    state.sessions.push_back(StoredSession{session.record,
                                           {session.events.begin(), session.events.end()},
                                           {session.followups.begin(), session.followups.end()}});
  }
  return state;
}

std::vector<StoredAuthSession> MemoryStore::load_tokens() {
  std::lock_guard lock(mutex_);
  std::vector<StoredAuthSession> tokens;
  for (const auto& [digest, expires] : auth_sessions_)
    tokens.push_back(StoredAuthSession{digest, expires});
  return tokens;
}

Ticket MemoryStore::save_token(const std::string& token_sha256, std::int64_t expires_unix_ms) {
  std::lock_guard lock(mutex_);
  auth_sessions_[token_sha256] = expires_unix_ms;
  return ++last_ticket_;
}

Ticket MemoryStore::delete_token(const std::string& token_sha256) {
  std::lock_guard lock(mutex_);
  auth_sessions_.erase(token_sha256);
  return ++last_ticket_;
}

Ticket MemoryStore::submit(StoreWrite write) {
  std::lock_guard lock(mutex_);
  std::visit([this](auto& concrete) { apply(concrete); }, write);
  return ++last_ticket_;
}

Ticket MemoryStore::durable_ticket() const {
  std::lock_guard lock(mutex_);
  return last_ticket_;
}

void MemoryStore::when_durable(Ticket, std::function<void(bool)> done) {
  done(true);
}

StoreInfo MemoryStore::info() const {
  std::lock_guard lock(mutex_);
  StoreInfo info;
  info.kind = "memory";
  info.durability = "none";
  info.commits = last_ticket_;
  return info;
}

void MemoryStore::apply(SaveSession& write) {
  sessions_[write.record.snapshot.session_id].record = std::move(write.record);
}

void MemoryStore::apply(AppendEvent& write) {
  Session& session = sessions_[write.record.snapshot.session_id];
  session.record = std::move(write.record);
  session.events.push_back(std::move(write.event));
  while (!session.events.empty() &&
         session.events.front().sequence_id < write.oldest_retained_sequence_id) {
    session.events.pop_front();
  }
  if (write.queued_followup)
    session.followups.push_back(std::move(*write.queued_followup));
}

void MemoryStore::apply(DrainFollowups& write) {
  Session& session = sessions_[write.record.snapshot.session_id];
  session.record = std::move(write.record);
  for (std::uint64_t i = 0; i < write.count && !session.followups.empty(); ++i)
    session.followups.pop_front();
}

void MemoryStore::apply(DeleteSession& write) {
  sessions_.erase(write.session_id);
}

}  // namespace tau::store
