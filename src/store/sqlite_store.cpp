#include "store/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tau::store {

namespace {

// Forward migrations: step i moves the schema from user_version i to i + 1. Never edit a step
// that has shipped; append a new one and raise kSchemaVersion.
constexpr std::array<std::string_view, SqliteStore::kSchemaVersion> kMigrations = {
    R"sql(
CREATE TABLE sessions (
  session_id TEXT PRIMARY KEY NOT NULL,
  workspace_id TEXT NOT NULL,
  status TEXT NOT NULL,
  started_unix_ms INTEGER NOT NULL,
  last_activity_unix_ms INTEGER NOT NULL,
  ended_unix_ms INTEGER NOT NULL,
  has_worker INTEGER NOT NULL,
  last_sequence_id INTEGER NOT NULL
);
CREATE TABLE events (
  session_id TEXT NOT NULL,
  sequence_id INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  message TEXT NOT NULL,
  timestamp_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (session_id, sequence_id)
) WITHOUT ROWID;
CREATE TABLE followups (
  id INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX followups_by_session ON followups (session_id, id);
CREATE TABLE auth_sessions (
  token_sha256 TEXT PRIMARY KEY NOT NULL,
  expires_unix_ms INTEGER NOT NULL
);
)sql",
};

// A large batch grows the WAL; past a checkpoint it is cut back to this size instead of keeping
// its high-water mark on disk forever.
constexpr std::int64_t kWalSizeLimitBytes = 8 << 20;

// An SQLite failure with its result code, turned into a StoreError (or a failed store) above.
class SqliteError : public std::runtime_error {
 public:
  SqliteError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_ & 0xff; }  // the primary code, without extended bits

 private:
  int code_;
};

[[noreturn]] void throw_last_error(sqlite3* db, int code) {
  throw SqliteError(code, sqlite3_errmsg(db));
}

// Owns a connection. Statements on it must be finalized before it is destroyed.
class Connection {
 public:
  Connection(const std::string& path, int flags) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      throw SqliteError(rc, message);
    }
  }
  Connection(Connection&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Connection& operator=(Connection&&) = delete;
  ~Connection() { sqlite3_close_v2(db_); }

  sqlite3* get() const { return db_; }

  void exec(const char* sql) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
      throw_last_error(db_, rc);
  }

 private:
  sqlite3* db_ = nullptr;
};

// Owns a prepared statement. Writer statements are prepared once and reused via run().
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK)
      throw_last_error(db, rc);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // SQLITE_STATIC: the text must outlive the next run() or reset(), which clears the bindings.
  Statement& bind(int index, std::string_view text) {
    check(sqlite3_bind_text64(stmt_, index, text.data() ? text.data() : "", text.size(),
                              SQLITE_STATIC, SQLITE_UTF8));
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  // Sequence ids are unsigned in C++ and INTEGER (signed 64-bit) in SQLite.
  Statement& bind(int index, std::uint64_t value) {
    return bind(index, static_cast<std::int64_t>(value));
  }

  // Steps once: true when a row is ready, false when done. Throws on error.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    fail(rc);
  }
  // Runs a statement that returns no rows and leaves it ready for reuse.
  void run() {
    const int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_DONE)
      fail(rc);
    reset();
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string text(int column) const {
    // Length-counted, so text with embedded NULs comes back whole.
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
                : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK)
      fail(rc);
  }
  // Takes the message before the reset, which leaves the statement reusable.
  [[noreturn]] void fail(int rc) {
    SqliteError error(rc, sqlite3_errmsg(db_));
    reset();
    throw error;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::int64_t query_int(sqlite3* db, const char* sql) {
  Statement statement(db, sql);
  return statement.step() ? statement.int64(0) : 0;
}

std::string query_text(sqlite3* db, const char* sql) {
  Statement statement(db, sql);
  return statement.step() ? statement.text(0) : std::string();
}

void migrate(Connection& db, std::int64_t version) {
  for (; version < SqliteStore::kSchemaVersion; ++version) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(std::string(kMigrations[static_cast<std::size_t>(version)]).c_str());
      db.exec(("PRAGMA user_version = " + std::to_string(version + 1)).c_str());
      db.exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
}

StoreError open_error(const std::string& path, const SqliteError& error) {
  if (error.code() == SQLITE_BUSY || error.code() == SQLITE_LOCKED)
    return StoreError("database " + path + " is in use by another process");
  return StoreError("cannot use database " + path + ": " + error.what());
}

// Opens `path`, refusing (untouched) a file that is not a database of ours or too new, then
// takes it exclusively, switches it to WAL and migrates it forward.
Connection open_database(const std::string& path, Durability durability) {
  std::error_code ignored;
  const bool exists = std::filesystem::exists(path, ignored);
  try {
    // Our own locking around the connection: the writer thread and load() never overlap.
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (!exists)
      flags |= SQLITE_OPEN_CREATE;
    Connection db(path, flags);
    if (!exists) {
      std::error_code error;
      std::filesystem::permissions(
          path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, error);
      if (error)
        spdlog::warn("store: cannot make {} private: {}", path, error.message());
    }

    // Until the checks pass, closing must not fold a WAL someone left behind into the main file.
    // (Without one, closing only removes the empty WAL that reading a WAL database creates.)
    const bool had_wal = std::filesystem::exists(path + "-wal", ignored);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, had_wal ? 1 : 0,
                      static_cast<int*>(nullptr));
    // Set before the first read so the lock taken by that read is never released (a second
    // gateway gets SQLITE_BUSY), and so WAL runs without a shared-memory (-shm) file.
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    const std::int64_t version = query_int(db.get(), "PRAGMA user_version");
    if (version > SqliteStore::kSchemaVersion) {
      throw StoreError("database " + path + " has schema version " + std::to_string(version) +
                       ", newer than this build's " + std::to_string(SqliteStore::kSchemaVersion) +
                       ": it was written by a newer tau-gateway");
    }
    if (sqlite3_db_readonly(db.get(), "main") == 1)
      throw StoreError("cannot use database " + path + ": the file is read-only");
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, static_cast<int*>(nullptr));

    if (query_text(db.get(), "PRAGMA journal_mode = WAL") != "wal")
      throw StoreError("cannot use database " + path + ": cannot switch it to WAL mode");
    db.exec(durability == Durability::full ? "PRAGMA synchronous = FULL"
                                           : "PRAGMA synchronous = NORMAL");
    db.exec(("PRAGMA journal_size_limit = " + std::to_string(kWalSizeLimitBytes)).c_str());
    migrate(db, version);
    return db;
  } catch (const SqliteError& error) {
    throw open_error(path, error);
  }
}

std::uint64_t file_bytes(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return error ? 0 : size;
}

}  // namespace

std::string_view to_string(Durability durability) {
  return durability == Durability::full ? "full" : "normal";
}

std::optional<Durability> durability_from_string(std::string_view text) {
  if (text == "normal")
    return Durability::normal;
  if (text == "full")
    return Durability::full;
  return std::nullopt;
}

class SqliteStore::Impl {
 public:
  Impl(std::string path, Durability durability)
      : path_(std::move(path)),
        durability_(durability),
        db_(open_database(path_, durability)),
        statements_(prepare(db_.get(), path_)) {
    writer_ = std::thread([this] { run_writer(); });
  }

  ~Impl() {
    flush();
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_ready_.notify_one();
    writer_.join();
  }

  StoredState load() {
    std::lock_guard db_lock(db_mutex_);
    try {
      return read_state();
    } catch (const SqliteError& error) {
      throw StoreError("cannot load database " + path_ + ": " + error.what());
    }
  }

  Ticket submit(StoreWrite write) {
    std::unique_lock lock(mutex_);
    const Ticket ticket = ++submitted_;
    if (failed_)
      return ticket;  // never applied: its waiters hear `false`
    // The writer only sleeps on an empty queue, so only the first write of a batch must wake it.
    const bool wake = queue_.empty();
    queue_.push_back(std::move(write));
    lock.unlock();
    if (wake)
      work_ready_.notify_one();
    return ticket;
  }

  Ticket durable_ticket() const { return durable_.load(); }

  void when_durable(Ticket ticket, std::function<void(bool)> done) {
    std::unique_lock lock(mutex_);
    const bool durable = ticket <= durable_.load();
    if (!durable && !failed_) {
      waiters_.emplace(ticket, std::move(done));
      return;
    }
    lock.unlock();
    done(durable);
  }

  void set_durable_listener(std::function<void(Ticket)> listener) {
    std::lock_guard lock(mutex_);
    listener_ = std::move(listener);
  }

  // Also waits for the callbacks of those tickets, so a caller sees their effects on return.
  void flush() {
    std::unique_lock lock(mutex_);
    const Ticket target = submitted_;
    reported_changed_.wait(lock, [&] { return reported_ >= target || writer_stopped_; });
  }

  StoreInfo info() const {
    StoreInfo info;
    info.kind = "sqlite";
    info.path = path_;
    info.durability = std::string(to_string(durability_));
    info.database_bytes = file_bytes(path_) + file_bytes(path_ + "-wal");
    std::lock_guard lock(mutex_);
    info.pending_writes = submitted_ - durable_.load();
    info.commits = commits_;
    info.failed = failed_;
    return info;
  }

 private:
  // Prepared once; the writer reuses them for every batch.
  struct Statements {
    explicit Statements(sqlite3* db)
        : begin(db, "BEGIN IMMEDIATE"),
          commit(db, "COMMIT"),
          upsert_session(db,
                         "INSERT INTO sessions (session_id, workspace_id, status, started_unix_ms,"
                         " last_activity_unix_ms, ended_unix_ms, has_worker, last_sequence_id)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                         " ON CONFLICT (session_id) DO UPDATE SET"
                         " workspace_id = excluded.workspace_id, status = excluded.status,"
                         " started_unix_ms = excluded.started_unix_ms,"
                         " last_activity_unix_ms = excluded.last_activity_unix_ms,"
                         " ended_unix_ms = excluded.ended_unix_ms,"
                         " has_worker = excluded.has_worker,"
                         " last_sequence_id = excluded.last_sequence_id"),
          insert_event(db,
                       "INSERT INTO events (session_id, sequence_id, event_type, message,"
                       " timestamp_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)"),
          trim_events(db, "DELETE FROM events WHERE session_id = ?1 AND sequence_id < ?2"),
          insert_followup(db, "INSERT INTO followups (session_id, message) VALUES (?1, ?2)"),
          drain_followups(db,
                          "DELETE FROM followups WHERE id IN (SELECT id FROM followups"
                          " WHERE session_id = ?1 ORDER BY id LIMIT ?2)"),
          delete_session(db, "DELETE FROM sessions WHERE session_id = ?1"),
          delete_events(db, "DELETE FROM events WHERE session_id = ?1"),
          delete_followups(db, "DELETE FROM followups WHERE session_id = ?1"),
          save_auth(db,
                    "INSERT INTO auth_sessions (token_sha256, expires_unix_ms) VALUES (?1, ?2)"
                    " ON CONFLICT (token_sha256) DO UPDATE SET"
                    " expires_unix_ms = excluded.expires_unix_ms"),
          delete_auth(db, "DELETE FROM auth_sessions WHERE token_sha256 = ?1") {}

    Statement begin, commit;
    Statement upsert_session, insert_event, trim_events, insert_followup, drain_followups;
    Statement delete_session, delete_events, delete_followups, save_auth, delete_auth;
  };

  static Statements prepare(sqlite3* db, const std::string& path) {
    try {
      return Statements(db);
    } catch (const SqliteError& error) {
      throw open_error(path, error);  // e.g. a file claiming our schema without our tables
    }
  }

  // What a batch writes once per session, at its end: the newest record and the highest
  // retention bound (the same result as applying each in turn, since a session's bound only
  // moves forward). Keys and records point into the batch, which outlives this.
  struct Deferred {
    std::unordered_map<std::string_view, const SessionRecord*> records;
    std::unordered_map<std::string_view, std::uint64_t> retention;

    void save(const SessionRecord& record) { records[record.snapshot.session_id] = &record; }
  };

  StoredState read_state() {
    sqlite3* db = db_.get();
    StoredState state;
    std::unordered_map<std::string, std::size_t> index;  // session id -> position in `state`

    Statement sessions(db,
                       "SELECT session_id, workspace_id, status, started_unix_ms,"
                       " last_activity_unix_ms, ended_unix_ms, has_worker, last_sequence_id"
                       " FROM sessions");
    while (sessions.step()) {
      StoredSession session;
      bridge::SessionSnapshot& snapshot = session.record.snapshot;
      snapshot.session_id = sessions.text(0);
      snapshot.workspace_id = sessions.text(1);
      const std::string status = sessions.text(2);
      const auto parsed = bridge::session_status_from_string(status);
      if (!parsed) {
        throw StoreError("database " + path_ + " is corrupt: session " + snapshot.session_id +
                         " has unknown status '" + status + "'");
      }
      snapshot.status = *parsed;
      snapshot.started_unix_ms = sessions.int64(3);
      snapshot.last_activity_unix_ms = sessions.int64(4);
      session.record.ended_unix_ms = sessions.int64(5);
      session.record.has_worker = sessions.int64(6) != 0;
      session.record.last_sequence_id = static_cast<std::uint64_t>(sessions.int64(7));
      index.emplace(snapshot.session_id, state.sessions.size());
      state.sessions.push_back(std::move(session));
    }

    // Rows of a session without a sessions row cannot be written by this store; skip them.
    Statement events(db,
                     "SELECT session_id, sequence_id, event_type, message, timestamp_unix_ms"
                     " FROM events ORDER BY session_id, sequence_id");
    while (events.step()) {
      const auto found = index.find(events.text(0));
      if (found == index.end())
        continue;
      bridge::SessionEvent event;
      event.sequence_id = static_cast<std::uint64_t>(events.int64(1));
      event.event_type = events.text(2);
      event.message = events.text(3);
      event.timestamp_unix_ms = events.int64(4);
      state.sessions[found->second].events.push_back(std::move(event));
    }

    Statement followups(db, "SELECT session_id, message FROM followups ORDER BY session_id, id");
    while (followups.step()) {
      const auto found = index.find(followups.text(0));
      if (found != index.end())
        state.sessions[found->second].followups.push_back(followups.text(1));
    }

    Statement auth(db, "SELECT token_sha256, expires_unix_ms FROM auth_sessions");
    while (auth.step())
      state.auth_sessions.push_back(StoredAuthSession{auth.text(0), auth.int64(1)});
    return state;
  }

  void run_writer() {
    std::unique_lock lock(mutex_);
    while (true) {
      work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        break;  // stopping, and everything is written
      std::vector<StoreWrite> batch;
      batch.swap(queue_);
      const Ticket last = submitted_;  // tickets are handed out in queue order
      lock.unlock();

      std::string error;
      try {
        std::lock_guard db_lock(db_mutex_);
        commit(batch);
      } catch (const std::exception& e) {
        error = e.what();
      }

      lock.lock();
      std::vector<std::function<void(bool)>> ready;
      const bool ok = error.empty();
      if (ok) {
        durable_.store(last);
        ++commits_;
        const auto end = waiters_.upper_bound(last);
        for (auto it = waiters_.begin(); it != end; ++it)
          ready.push_back(std::move(it->second));
        waiters_.erase(waiters_.begin(), end);
      } else {
        spdlog::critical("store: commit to {} failed; nothing more will be made durable: {}", path_,
                         error);
        failed_ = true;
        queue_.clear();
        for (auto& [ticket, done] : waiters_)
          ready.push_back(std::move(done));
        waiters_.clear();
      }
      const auto listener = listener_;
      lock.unlock();

      // Callbacks run outside the mutex: they may submit or ask for tickets themselves.
      if (ok && listener)
        listener(last);
      for (auto& done : ready)
        done(ok);

      lock.lock();
      if (!ok)
        break;
      reported_ = last;
      reported_changed_.notify_all();
    }
    writer_stopped_ = true;
    reported_changed_.notify_all();
  }

  // Applies a batch in one transaction, in submission order.
  void commit(const std::vector<StoreWrite>& batch) {
    Statements& s = statements_;
    s.begin.run();
    try {
      Deferred deferred;
      for (const StoreWrite& write : batch)
        std::visit([&](const auto& concrete) { apply(concrete, deferred); }, write);
      for (const auto& [session_id, bound] : deferred.retention)
        s.trim_events.bind(1, session_id).bind(2, bound).run();
      for (const auto& [session_id, record] : deferred.records)
        upsert(*record);
      s.commit.run();
    } catch (...) {
      if (!sqlite3_get_autocommit(db_.get()))
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void apply(const SaveSession& write, Deferred& deferred) { deferred.save(write.record); }

  void apply(const AppendEvent& write, Deferred& deferred) {
    const std::string& session_id = write.record.snapshot.session_id;
    const bridge::SessionEvent& event = write.event;
    statements_.insert_event.bind(1, session_id)
        .bind(2, event.sequence_id)
        .bind(3, event.event_type)
        .bind(4, event.message)
        .bind(5, event.timestamp_unix_ms)
        .run();
    if (write.queued_followup)
      statements_.insert_followup.bind(1, session_id).bind(2, *write.queued_followup).run();
    std::uint64_t& bound = deferred.retention[session_id];
    bound = std::max(bound, write.oldest_retained_sequence_id);
    deferred.save(write.record);
  }

  void apply(const DrainFollowups& write, Deferred& deferred) {
    statements_.drain_followups.bind(1, write.record.snapshot.session_id)
        .bind(2, write.count)
        .run();
    deferred.save(write.record);
  }

  void apply(const DeleteSession& write, Deferred& deferred) {
    // Takes effect here: whatever the batch wrote for the session before is dropped, whatever
    // it writes after recreates it.
    deferred.records.erase(write.session_id);
    deferred.retention.erase(write.session_id);
    statements_.delete_session.bind(1, write.session_id).run();
    statements_.delete_events.bind(1, write.session_id).run();
    statements_.delete_followups.bind(1, write.session_id).run();
  }

  void apply(const SaveAuthSession& write, Deferred&) {
    statements_.save_auth.bind(1, write.token_sha256).bind(2, write.expires_unix_ms).run();
  }

  void apply(const DeleteAuthSession& write, Deferred&) {
    statements_.delete_auth.bind(1, write.token_sha256).run();
  }

  void upsert(const SessionRecord& record) {
    const bridge::SessionSnapshot& snapshot = record.snapshot;
    statements_.upsert_session.bind(1, snapshot.session_id)
        .bind(2, snapshot.workspace_id)
        .bind(3, bridge::to_string(snapshot.status))
        .bind(4, snapshot.started_unix_ms)
        .bind(5, snapshot.last_activity_unix_ms)
        .bind(6, record.ended_unix_ms)
        .bind(7, std::int64_t{record.has_worker})
        .bind(8, record.last_sequence_id)
        .run();
  }

  const std::string path_;
  const Durability durability_;
  Connection db_;
  std::mutex db_mutex_;    // one user of the connection at a time: the writer or load()
  Statements statements_;  // declared after db_: finalized before it closes

  mutable std::mutex mutex_;  // guards everything below; never held during I/O or callbacks
  std::condition_variable work_ready_;        // queue non-empty or stopping
  std::condition_variable reported_changed_;  // reported_ advanced or the writer stopped
  std::vector<StoreWrite> queue_;
  Ticket submitted_ = 0;
  std::atomic<Ticket> durable_ = 0;  // committed; read without the mutex by durable_ticket()
  Ticket reported_ = 0;              // committed and its callbacks run (what flush() waits for)
  std::uint64_t commits_ = 0;
  bool failed_ = false;
  bool stopping_ = false;
  bool writer_stopped_ = false;
  std::multimap<Ticket, std::function<void(bool)>> waiters_;
  std::function<void(Ticket)> listener_;
  std::thread writer_;
};

SqliteStore::SqliteStore(std::string path, Durability durability)
    : impl_(std::make_unique<Impl>(std::move(path), durability)) {}
SqliteStore::~SqliteStore() = default;
StoredState SqliteStore::load() {
  return impl_->load();
}
Ticket SqliteStore::submit(StoreWrite write) {
  return impl_->submit(std::move(write));
}
Ticket SqliteStore::durable_ticket() const {
  return impl_->durable_ticket();
}
void SqliteStore::when_durable(Ticket ticket, std::function<void(bool)> done) {
  impl_->when_durable(ticket, std::move(done));
}
void SqliteStore::set_durable_listener(std::function<void(Ticket)> listener) {
  impl_->set_durable_listener(std::move(listener));
}
void SqliteStore::flush() {
  impl_->flush();
}
StoreInfo SqliteStore::info() const {
  return impl_->info();
}

}  // namespace tau::store
