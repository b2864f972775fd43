#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/session_store.h"
#include "store/token_store.h"

namespace tau::store {

// Keeps what it is given in memory: every write is "durable" at once and lives as long as the
// object. For `--store memory` (nothing survives a restart) and as the reference the SQLite
// store is tested against.
class MemoryStore final : public SessionStore, public TokenStore {
 public:
  StoredState load_sessions(LoadScope scope) override;
  Ticket submit(StoreWrite write) override;
  std::vector<StoredAuthSession> load_tokens() override;
  Ticket save_token(const std::string& token_sha256, std::int64_t expires_unix_ms) override;
  Ticket delete_token(const std::string& token_sha256) override;
  Ticket durable_ticket() const override;
  void when_durable(Ticket ticket, std::function<void(bool)> done) override;
  void set_durable_listener(std::function<void(Ticket)>) override {}
  void flush() override {}
  StoreInfo info() const override;
  bool failed() const override { return false; }
  const metrics::Histogram& commit_seconds() const override { return commit_seconds_; }

 private:
  struct Session {
    SessionRecord record;
    std::deque<core::SessionEvent> events;
    std::deque<std::string> followups;
  };

  void apply(SaveSession& write);
  void apply(AppendEvent& write);
  void apply(DrainFollowups& write);
  void apply(DeleteSession& write);

  mutable std::mutex mutex_;
  Ticket last_ticket_ = 0;
  std::unordered_map<std::string, Session> sessions_;
  std::unordered_map<std::string, std::int64_t> auth_sessions_;
  const metrics::Histogram commit_seconds_{metrics::Histogram::latency_seconds_bounds()};
};

}  // namespace tau::store
