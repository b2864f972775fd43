#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "store/session_store.h"
#include "store/token_store.h"

namespace tau::store {

// normal: a commit survives a crash of the gateway process (WAL, synchronous=NORMAL).
// full: it also survives a power loss (the WAL is fsynced on every commit, synchronous=FULL).
enum class Durability { normal, full };
std::string_view to_string(Durability durability);
std::optional<Durability> durability_from_string(std::string_view text);

// The embedded default: one SQLite file in WAL mode, written by one writer thread that commits
// whatever is waiting in a single transaction (group commit). Holds the file exclusively, so a
// second gateway on the same state dir refuses to start. Beside the file, `<path>.seqmark` holds
// each session's highest committed sequence id (rewritten by the checkpointer at most once a
// second while commits go on, and at close): a session that comes back from a lost or damaged
// WAL tail with a lower counter continues past its mark, so ids are not handed out twice.
class SqliteStore final : public SessionStore, public TokenStore {
 public:
  // Opens or creates the database at `path` and migrates its schema forward. Throws StoreError,
  // naming the file, when it cannot be opened, is not a database or is corrupt, has a newer
  // schema than this build knows, or is in use by another process, or when its sequence mark is
  // damaged. A file it refuses is left exactly as it was.
  SqliteStore(std::string path, Durability durability);
  ~SqliteStore() override;  // commits everything submitted, then stops the writer
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // With LoadScope::running_events, ended sessions' events stay on disk (read_events()).
  StoredState load_sessions(LoadScope scope) override;
  bool reads_events() const override { return true; }
  std::vector<core::SessionEvent> read_events(std::string_view session_id, std::uint64_t after,
                                              std::uint64_t through, std::size_t limit) override;
  Ticket submit(StoreWrite write) override;
  std::vector<StoredAuthSession> load_tokens() override;
  Ticket save_token(const std::string& token_sha256, std::int64_t expires_unix_ms) override;
  Ticket delete_token(const std::string& token_sha256) override;
  Ticket durable_ticket() const override;
  void when_durable(Ticket ticket, std::function<void(bool)> done) override;
  void set_durable_listener(std::function<void(Ticket)> listener) override;
  void flush() override;
  StoreInfo info() const override;
  bool failed() const override;
  const metrics::Histogram& commit_seconds() const override;

  // The schema version this build writes (PRAGMA user_version).
  static constexpr int kSchemaVersion = 2;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tau::store
