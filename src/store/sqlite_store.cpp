#include "store/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "store/sequence_mark.h"

namespace tau::store {

namespace {

// The journal's writes: the sessions' and the tokens', in one queue and one ticket sequence.
struct SaveAuthSession {
  std::string token_sha256;
  std::int64_t expires_unix_ms = 0;
};
struct DeleteAuthSession {
  std::string token_sha256;
};
using JournalWrite = std::variant<SaveSession, AppendEvent, DrainFollowups, DeleteSession,
                                  SaveAuthSession, DeleteAuthSession>;

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
  event_id INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL,
  sequence_id INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  message TEXT NOT NULL,
  timestamp_unix_ms INTEGER NOT NULL
);
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
    // 2: an event's structured payload (a serialized JSON object; '' for none).
    R"sql(
ALTER TABLE events ADD COLUMN data TEXT NOT NULL DEFAULT '';
)sql",
};

// Why `events` has no index: rows are appended in event_id order, so the events of one commit
// share the table's last page or two, whatever sessions they belong to. An index by session
// would put each commit's events on as many pages as it has sessions, and every page a commit
// dirties is one more WAL write; that was most of the cost of a commit. The writer keeps each
// session's (sequence_id, event_id) list in memory instead, for retention and deletes.

// A large batch grows the WAL; past a checkpoint it is cut back to this size instead of keeping
// its high-water mark on disk forever.
constexpr std::int64_t kWalSizeLimitBytes = 8 << 20;
// The checkpointer is woken once the WAL holds this many pages (SQLite's default threshold)...
constexpr int kCheckpointPages = 1000;
// ...and the writer checkpoints itself past this many (16 MiB of 4 KiB pages): under a steady
// load the checkpointer never catches up completely, and only a complete checkpoint lets SQLite
// start the WAL over. By then most of it is copied, so this stall is short.
constexpr int kWalHardLimitPages = 4096;

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

// A WAL or shared-memory file beside a missing or empty main file means the main file was lost
// or truncated: SQLite would start an empty database and delete the WAL, so the history in it
// would be gone silently. Refuse, and touch nothing.
void refuse_lost_main_file(const std::string& path) {
  std::error_code error;
  const bool main_present = std::filesystem::exists(path, error);
  if (main_present && std::filesystem::file_size(path, error) > 0)
    return;
  for (const char* suffix : {"-wal", "-shm"}) {
    if (std::filesystem::exists(path + suffix, error)) {
      throw StoreError("database " + path + " is " + (main_present ? "empty" : "missing") +
                       " but " + path + suffix +
                       " is beside it: the database file was lost or truncated; refusing to "
                       "start an empty one over its history (move both aside to start afresh)");
    }
  }
}

// PRAGMA quick_check: every page and index readable and consistent (without comparing index
// contents to tables, which is integrity_check's slow part).
void check_integrity(sqlite3* db, const std::string& path) {
  const std::string verdict = query_text(db, "PRAGMA quick_check");
  if (verdict != "ok")
    throw StoreError("database " + path + " failed its integrity check (quick_check): " + verdict);
}

// Holds an exclusive flock() on the database file for as long as it lives, so a second gateway
// on the same state dir is refused before it reads anything. flock() locks are independent of
// SQLite's fcntl() locks; this descriptor must stay open until SQLite has closed the file, since
// closing any descriptor of a file drops the process's fcntl() locks on it.
class FileLock {
 public:
  explicit FileLock(const std::string& database_path) {
    refuse_lost_main_file(database_path);
    // A new database starts as the empty file this creates (private from the start).
    fd_ = ::open(database_path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      throw StoreError("cannot use database " + database_path + ": " +
                       std::generic_category().message(errno));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd_);
      if (error == EWOULDBLOCK)
        throw StoreError("database " + database_path + " is in use by another process");
      throw StoreError("cannot lock database " + database_path + ": " +
                       std::generic_category().message(error));
    }
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { ::close(fd_); }

 private:
  int fd_ = -1;
};

StoreError open_error(const std::string& path, const SqliteError& error) {
  if (error.code() == SQLITE_BUSY || error.code() == SQLITE_LOCKED)
    return StoreError("database " + path + " is in use by another process");
  return StoreError("cannot use database " + path + ": " + error.what());
}

// Opens `path`, refusing (untouched) a file that is not a database of ours or too new, then
// takes it exclusively, switches it to WAL and migrates it forward.
Connection open_database(const std::string& path, Durability durability) {
  std::error_code ignored;
  try {
    // The file exists: FileLock created it if it was missing, so an empty file is a new database.
    // Our own locking around the connection: the writer thread and load() never overlap.
    Connection db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);

    // Until the checks pass, closing must not fold a WAL someone left behind into the main file.
    // (Without one, closing only removes the empty WAL that reading a WAL database creates.)
    const bool had_wal = std::filesystem::exists(path + "-wal", ignored);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, had_wal ? 1 : 0,
                      static_cast<int*>(nullptr));
    const std::int64_t version = query_int(db.get(), "PRAGMA user_version");
    if (version > SqliteStore::kSchemaVersion) {
      throw StoreError("database " + path + " has schema version " + std::to_string(version) +
                       ", newer than this build's " + std::to_string(SqliteStore::kSchemaVersion) +
                       ": it was written by a newer tau-gateway");
    }
    if (sqlite3_db_readonly(db.get(), "main") == 1)
      throw StoreError("cannot use database " + path + ": the file is read-only");
    check_integrity(db.get(), path);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, static_cast<int*>(nullptr));

    if (query_text(db.get(), "PRAGMA journal_mode = WAL") != "wal")
      throw StoreError("cannot use database " + path + ": cannot switch it to WAL mode");
    db.exec(durability == Durability::full ? "PRAGMA synchronous = FULL"
                                           : "PRAGMA synchronous = NORMAL");
    db.exec(("PRAGMA journal_size_limit = " + std::to_string(kWalSizeLimitBytes)).c_str());
    // Checkpoints run on their own thread (see Impl::on_wal_grown), not inside the writer's
    // commits, where each one stalled every waiting request for the length of two fsyncs.
    db.exec("PRAGMA wal_autocheckpoint = 0");
    sqlite3_busy_timeout(db.get(), 10000);  // only ever waits for our own checkpointer
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

// The sequence mark (store/sequence_mark.h) is written at most this often while commits go on
// (and after each checkpoint).
constexpr std::chrono::milliseconds kMarkInterval{1000};

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
        mark_path_(mark_path_of(path_)),
        durability_(durability),
        file_lock_(path_),
        // Before the database is touched, so that refusing a damaged mark leaves it as it was.
        stored_marks_(read_marks(mark_path_)),
        db_(open_database(path_, durability)),
        checkpoint_db_(open_checkpoint_connection(path_, durability)),
        statements_(prepare(db_.get(), path_)) {
    index_event_rows();
    apply_marks();
    sqlite3_wal_hook(db_.get(), &Impl::on_wal_grown, this);
    checkpointer_ = std::thread([this] { run_checkpointer(); });
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
    {
      std::lock_guard lock(checkpoint_mutex_);
      checkpoint_stopping_ = true;
    }
    checkpoint_wanted_.notify_one();
    checkpointer_.join();
  }

  StoredState load(LoadScope scope) {
    std::lock_guard db_lock(db_mutex_);
    try {
      return read_state(scope);
    } catch (const SqliteError& error) {
      throw StoreError("cannot load database " + path_ + ": " + error.what());
    }
  }

  // Point reads by event_id, which the writer's index of each session's rows gives: the events
  // table has no index by session (see the note on it).
  std::vector<core::SessionEvent> read_events(std::string_view session_id, std::uint64_t after,
                                              std::uint64_t through, std::size_t limit) {
    std::vector<core::SessionEvent> events;
    std::lock_guard db_lock(db_mutex_);
    const auto found = event_rows_.find(std::string(session_id));
    if (found == event_rows_.end())
      return events;
    const auto& rows = found->second;
    auto row = std::partition_point(rows.begin(), rows.end(),
                                    [&](const EventRow& r) { return r.sequence_id <= after; });
    try {
      for (; row != rows.end() && row->sequence_id <= through && events.size() < limit; ++row) {
        Statement& read = statements_.read_event;
        read.bind(1, row->event_id);
        if (read.step())
          events.push_back(event_of(read, 0));
        read.reset();
      }
    } catch (const SqliteError& error) {
      throw StoreError("cannot read events from database " + path_ + ": " + error.what());
    }
    return events;
  }

  std::vector<StoredAuthSession> load_tokens() {
    std::lock_guard db_lock(db_mutex_);
    try {
      std::vector<StoredAuthSession> tokens;
      Statement auth(db_.get(), "SELECT token_sha256, expires_unix_ms FROM auth_sessions");
      while (auth.step())
        tokens.push_back(StoredAuthSession{auth.text(0), auth.int64(1)});
      return tokens;
    } catch (const SqliteError& error) {
      throw StoreError("cannot load database " + path_ + ": " + error.what());
    }
  }

  Ticket submit(JournalWrite write) {
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

  bool failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }

  const metrics::Histogram& commit_seconds() const { return commit_seconds_; }

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
                       " timestamp_unix_ms, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
          delete_event(db, "DELETE FROM events WHERE event_id = ?1"),
          read_event(db,
                     "SELECT sequence_id, event_type, message, timestamp_unix_ms, data"
                     " FROM events WHERE event_id = ?1"),
          insert_followup(db, "INSERT INTO followups (session_id, message) VALUES (?1, ?2)"),
          drain_followups(db,
                          "DELETE FROM followups WHERE id IN (SELECT id FROM followups"
                          " WHERE session_id = ?1 ORDER BY id LIMIT ?2)"),
          delete_session(db, "DELETE FROM sessions WHERE session_id = ?1"),
          delete_followups(db, "DELETE FROM followups WHERE session_id = ?1"),
          save_auth(db,
                    "INSERT INTO auth_sessions (token_sha256, expires_unix_ms) VALUES (?1, ?2)"
                    " ON CONFLICT (token_sha256) DO UPDATE SET"
                    " expires_unix_ms = excluded.expires_unix_ms"),
          delete_auth(db, "DELETE FROM auth_sessions WHERE token_sha256 = ?1") {}

    Statement begin, commit;
    Statement upsert_session, insert_event, delete_event, read_event, insert_followup,
        drain_followups;
    Statement delete_session, delete_followups, save_auth, delete_auth;
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
    std::unordered_set<std::string_view> deleted;  // and not written again after

    void save(const SessionRecord& record) {
      records[record.snapshot.session_id] = &record;
      deleted.erase(record.snapshot.session_id);
    }
  };

  StoredState read_state(LoadScope scope) {
    sqlite3* db = db_.get();
    StoredState state;
    std::unordered_map<std::string, std::size_t> index;  // session id -> position in `state`

    Statement sessions(db,
                       "SELECT session_id, workspace_id, status, started_unix_ms,"
                       " last_activity_unix_ms, ended_unix_ms, has_worker, last_sequence_id"
                       " FROM sessions");
    while (sessions.step()) {
      StoredSession session;
      core::SessionSnapshot& snapshot = session.record.snapshot;
      snapshot.session_id = sessions.text(0);
      snapshot.workspace_id = sessions.text(1);
      const std::string status = sessions.text(2);
      const auto parsed = core::session_status_from_string(status);
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
      if (const auto floor = floors_.find(snapshot.session_id); floor != floors_.end()) {
        session.record.last_sequence_id = std::max(session.record.last_sequence_id, floor->second);
      }
      index.emplace(snapshot.session_id, state.sessions.size());
      state.sessions.push_back(std::move(session));
    }

    // Rows of a session without a sessions row cannot be written by this store; skip them.
    if (scope == LoadScope::all_events) {
      Statement events(db,
                       "SELECT session_id, sequence_id, event_type, message, timestamp_unix_ms,"
                       " data FROM events ORDER BY event_id");
      while (events.step()) {
        const auto found = index.find(events.text(0));
        if (found != index.end())
          state.sessions[found->second].events.push_back(event_of(events, 1));
      }
    } else {
      read_running_events(state, index);
    }

    Statement followups(db, "SELECT session_id, message FROM followups ORDER BY session_id, id");
    while (followups.step()) {
      const auto found = index.find(followups.text(0));
      if (found != index.end())
        state.sessions[found->second].followups.push_back(followups.text(1));
    }
    return state;
  }

  // One event from `row`'s columns from `first` on: sequence_id, event_type, message, timestamp,
  // data.
  static core::SessionEvent event_of(const Statement& row, int first) {
    core::SessionEvent event;
    event.sequence_id = static_cast<std::uint64_t>(row.int64(first));
    event.event_type = row.text(first + 1);
    event.message = row.text(first + 2);
    event.timestamp_unix_ms = row.int64(first + 3);
    event.data = row.text(first + 4);
    return event;
  }

  // Running sessions' events only: ended sessions' stay on disk, noted by their oldest id. The
  // messages are read by event_id, so an ended session's (overflow) pages are never read.
  void read_running_events(StoredState& state,
                           const std::unordered_map<std::string, std::size_t>& index) {
    for (auto& session : state.sessions) {
      if (session.record.snapshot.status != core::SessionStatus::running)
        session.events_loaded = false;
    }
    Statement read(db_.get(),
                   "SELECT sequence_id, event_type, message, timestamp_unix_ms, data FROM events"
                   " WHERE event_id = ?1");
    for (const auto& [session_id, rows] : event_rows_) {
      const auto found = index.find(session_id);
      if (found == index.end() || rows.empty())
        continue;
      StoredSession& session = state.sessions[found->second];
      session.first_stored_sequence_id = rows.front().sequence_id;
      session.last_stored_sequence_id = rows.back().sequence_id;
      if (!session.events_loaded)
        continue;
      for (const EventRow& row : rows) {
        read.bind(1, row.event_id);
        if (read.step())
          session.events.push_back(event_of(read, 0));
        read.reset();
      }
    }
  }

  void run_writer() {
    std::unique_lock lock(mutex_);
    while (true) {
      work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        break;  // stopping, and everything is written
      std::vector<JournalWrite> batch;
      batch.swap(queue_);
      const Ticket last = submitted_;  // tickets are handed out in queue order
      lock.unlock();

      std::string error;
      try {
        std::lock_guard db_lock(db_mutex_);
        const auto started = std::chrono::steady_clock::now();
        commit(batch);
        commit_seconds_.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
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
  void commit(const std::vector<JournalWrite>& batch) {
    Statements& s = statements_;
    s.begin.run();
    try {
      Deferred deferred;
      for (const JournalWrite& write : batch)
        std::visit([&](const auto& concrete) { apply(concrete, deferred); }, write);
      for (const auto& [session_id, bound] : deferred.retention)
        trim_events(session_id, bound);
      for (const auto& [session_id, record] : deferred.records)
        upsert(*record);
      s.commit.run();
      note_committed(deferred);
    } catch (...) {
      if (sqlite3_get_autocommit(db_.get()) == 0)
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void apply(const SaveSession& write, Deferred& deferred) { deferred.save(write.record); }

  void apply(const AppendEvent& write, Deferred& deferred) {
    const std::string& session_id = write.record.snapshot.session_id;
    const core::SessionEvent& event = write.event;
    auto& rows = event_rows_[session_id];
    // What a (session_id, sequence_id) key would enforce: a session's events only move forward.
    if (!rows.empty() && event.sequence_id <= rows.back().sequence_id) {
      throw std::runtime_error("event " + std::to_string(event.sequence_id) + " of session " +
                               session_id + " is not after its stored event " +
                               std::to_string(rows.back().sequence_id));
    }
    statements_.insert_event.bind(1, session_id)
        .bind(2, event.sequence_id)
        .bind(3, event.event_type)
        .bind(4, event.message)
        .bind(5, event.timestamp_unix_ms)
        .bind(6, event.data)
        .run();
    rows.push_back(EventRow{event.sequence_id, sqlite3_last_insert_rowid(db_.get())});
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
    deferred.deleted.insert(write.session_id);
    statements_.delete_session.bind(1, write.session_id).run();
    if (auto found = event_rows_.find(write.session_id); found != event_rows_.end()) {
      for (const EventRow& row : found->second)
        statements_.delete_event.bind(1, row.event_id).run();
      event_rows_.erase(found);
    }
    statements_.delete_followups.bind(1, write.session_id).run();
  }

  void apply(const SaveAuthSession& write, Deferred&) {
    statements_.save_auth.bind(1, write.token_sha256).bind(2, write.expires_unix_ms).run();
  }

  void apply(const DeleteAuthSession& write, Deferred&) {
    statements_.delete_auth.bind(1, write.token_sha256).run();
  }

  static Connection open_checkpoint_connection(const std::string& path, Durability durability) {
    try {
      Connection db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
      db.exec(durability == Durability::full ? "PRAGMA synchronous = FULL"
                                             : "PRAGMA synchronous = NORMAL");
      return db;
    } catch (const SqliteError& error) {
      throw open_error(path, error);
    }
  }

  // Called by SQLite on the writer thread after each commit, with the WAL's size in pages.
  static int on_wal_grown(void* self, sqlite3* db, const char*, int wal_pages) {
    auto& impl = *static_cast<Impl*>(self);
    if (wal_pages >= kWalHardLimitPages) {
      // The checkpointer cannot keep up (or the WAL never got fully backfilled): checkpoint
      // here, stalling the writer, rather than letting the WAL grow without bound.
      // RESTART makes the next commit start the WAL over. SQLite answers BUSY at once while
      // another connection checkpoints, so first wait for our checkpointer to finish.
      std::lock_guard running(impl.checkpoint_running_);
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
    } else if (wal_pages >= kCheckpointPages) {
      {
        std::lock_guard lock(impl.checkpoint_mutex_);
        impl.checkpoint_requested_ = true;
      }
      impl.checkpoint_wanted_.notify_one();
    }
    return SQLITE_OK;
  }

  // Copies the WAL back into the database while the writer goes on committing (a PASSIVE
  // checkpoint never blocks it); once everything is copied, SQLite starts the WAL over. Also
  // writes the sequence mark: after a checkpoint, at most every kMarkInterval while commits go
  // on, and a last time when the store closes.
  void run_checkpointer() {
    std::unique_lock lock(checkpoint_mutex_);
    auto next_mark = std::chrono::steady_clock::now();
    while (true) {
      const auto wanted = [&] { return checkpoint_stopping_ || checkpoint_requested_; };
      if (marks_dirty_)
        checkpoint_wanted_.wait_until(lock, next_mark, wanted);
      else
        checkpoint_wanted_.wait(lock, [&] { return wanted() || marks_dirty_; });
      const bool stopping = checkpoint_stopping_;
      bool checkpointed = false;
      if (checkpoint_requested_ && !stopping) {
        checkpoint_requested_ = false;
        lock.unlock();
        std::unique_lock running(checkpoint_running_);
        const int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_.get(), nullptr,
                                                 SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        running.unlock();
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
          spdlog::warn("store: checkpoint of {} failed: {}", path_, sqlite3_errstr(rc));
        checkpointed = rc == SQLITE_OK;
        lock.lock();
      }
      if (marks_dirty_ &&
          (stopping || checkpointed || std::chrono::steady_clock::now() >= next_mark)) {
        // A copy, so the writer (which takes this mutex after each commit) never waits for I/O.
        const SequenceMarks marks = marks_;
        marks_dirty_ = false;
        lock.unlock();
        const std::string error = write_marks(mark_path_, marks);
        next_mark = std::chrono::steady_clock::now() + kMarkInterval;
        lock.lock();
        if (!error.empty()) {
          marks_dirty_ = true;  // tried again after the interval
          if (!mark_failing_) {
            spdlog::warn("store: cannot write sequence mark (retrying every {} ms): {}",
                         kMarkInterval.count(), error);
          }
          mark_failing_ = true;
        } else if (mark_failing_) {
          spdlog::info("store: sequence mark {} written again", mark_path_);
          mark_failing_ = false;
        }
      }
      if (stopping)
        return;
    }
  }

  // Called by the writer after each commit (under db_mutex_, taking checkpoint_mutex_ briefly):
  // what it committed goes into the next mark.
  void note_committed(const Deferred& deferred) {
    if (deferred.records.empty() && deferred.deleted.empty())
      return;  // tokens only
    bool wake = false;
    {
      std::lock_guard lock(checkpoint_mutex_);
      for (const std::string_view session_id : deferred.deleted) {
        if (const auto found = marks_.find(session_id); found != marks_.end())
          marks_.erase(found);
      }
      for (const auto& [session_id, record] : deferred.records) {
        if (const auto found = marks_.find(session_id); found != marks_.end())
          found->second = std::max(found->second, record->last_sequence_id);
        else
          marks_.emplace(std::string(session_id), record->last_sequence_id);
      }
      wake = !marks_dirty_;
      marks_dirty_ = true;
    }
    if (wake)
      checkpoint_wanted_.notify_one();
  }

  // At open, before the threads start: continues every session whose counter in the database is
  // below its mark past the mark (read_state applies floors_), and seeds the marks to write.
  void apply_marks() {
    const bool had_file = stored_marks_.has_value();
    SequenceMarks stored = had_file ? std::move(*stored_marks_) : SequenceMarks();
    stored_marks_.reset();
    bool changed = !had_file;
    try {
      Statement sessions(db_.get(), "SELECT session_id, last_sequence_id FROM sessions");
      while (sessions.step()) {
        std::string session_id = sessions.text(0);
        const auto last = static_cast<std::uint64_t>(sessions.int64(1));
        std::uint64_t mark = last;
        if (const auto found = stored.find(session_id); found != stored.end()) {
          if (found->second > last) {
            spdlog::warn(
                "store: session {} has sequence ids up to {} in {}, but {} records ids up to {} as "
                "committed: the history after {} was lost (a lost or damaged write-ahead log "
                "tail, or a power loss with --durability normal); the session continues at {} so "
                "that no id is handed out twice",
                session_id, last, path_, mark_path_, found->second, last, found->second + 1);
            floors_[session_id] = found->second;
            mark = found->second;
          } else if (found->second < last) {
            changed = true;
          }
          stored.erase(found);
        } else {
          changed = true;
        }
        marks_.emplace(std::move(session_id), mark);
      }
    } catch (const SqliteError& error) {
      throw open_error(path_, error);
    }
    if (!stored.empty()) {
      // The session pool's ids are random, so these sessions never come back to reuse an id.
      spdlog::info(
          "store: {} sessions recorded in {} are not in {} (deleted after the mark's last write, "
          "or lost with the write-ahead log's tail)",
          stored.size(), mark_path_, path_);
      changed = true;
    }
    if (!had_file && !marks_.empty()) {
      spdlog::warn(
          "store: no sequence mark {} beside {}: sequence ids continue from the database "
          "(a mark is written from now on)",
          mark_path_, path_);
    }
    marks_dirty_ = changed && !(marks_.empty() && !had_file);
  }

  // Deletes the session's events with sequence ids below `bound`.
  void trim_events(std::string_view session_id, std::uint64_t bound) {
    const auto found = event_rows_.find(std::string(session_id));
    if (found == event_rows_.end())
      return;
    auto& rows = found->second;
    while (!rows.empty() && rows.front().sequence_id < bound) {
      statements_.delete_event.bind(1, rows.front().event_id).run();
      rows.pop_front();
    }
  }

  // Reads where each session's events are, before the writer starts.
  void index_event_rows() {
    try {
      Statement rows(db_.get(),
                     "SELECT session_id, sequence_id, event_id FROM events ORDER BY event_id");
      while (rows.step()) {
        event_rows_[rows.text(0)].push_back(
            EventRow{static_cast<std::uint64_t>(rows.int64(1)), rows.int64(2)});
      }
    } catch (const SqliteError& error) {
      throw open_error(path_, error);
    }
  }

  void upsert(const SessionRecord& record) {
    const core::SessionSnapshot& snapshot = record.snapshot;
    statements_.upsert_session.bind(1, snapshot.session_id)
        .bind(2, snapshot.workspace_id)
        .bind(3, core::to_string(snapshot.status))
        .bind(4, snapshot.started_unix_ms)
        .bind(5, snapshot.last_activity_unix_ms)
        .bind(6, record.ended_unix_ms)
        .bind(7, std::int64_t{record.has_worker ? 1 : 0})
        .bind(8, record.last_sequence_id)
        .run();
  }

  const std::string path_;
  const std::string mark_path_;  // the sequence mark, beside the database
  // Declared before the connections: taken before they open, released after they close.
  const Durability durability_;
  FileLock file_lock_;
  std::optional<SequenceMarks> stored_marks_;  // as read at open; consumed by apply_marks()
  Connection db_;
  Connection checkpoint_db_;  // used by the checkpointer thread only
  std::mutex db_mutex_;       // one user of the connection at a time: the writer or load()
  Statements statements_;     // declared after db_: finalized before it closes
  struct EventRow {
    std::uint64_t sequence_id = 0;
    std::int64_t event_id = 0;
  };
  // Each session's stored events, oldest first (see the note on the events table). Used by the
  // writer only (and the constructor before it starts).
  std::unordered_map<std::string, std::deque<EventRow>> event_rows_;
  // Sessions whose counter in the database was below their mark at open: loaded as the mark.
  std::unordered_map<std::string, std::uint64_t> floors_;

  mutable std::mutex mutex_;  // guards everything below; never held during I/O or callbacks
  std::condition_variable work_ready_;        // queue non-empty or stopping
  std::condition_variable reported_changed_;  // reported_ advanced or the writer stopped
  std::vector<JournalWrite> queue_;
  Ticket submitted_ = 0;
  std::atomic<Ticket> durable_ = 0;  // committed; read without the mutex by durable_ticket()
  Ticket reported_ = 0;              // committed and its callbacks run (what flush() waits for)
  std::uint64_t commits_ = 0;
  metrics::Histogram commit_seconds_{metrics::Histogram::latency_seconds_bounds()};
  bool failed_ = false;
  bool stopping_ = false;
  bool writer_stopped_ = false;
  std::multimap<Ticket, std::function<void(bool)>> waiters_;
  std::function<void(Ticket)> listener_;
  std::thread writer_;

  std::mutex checkpoint_mutex_;
  std::mutex checkpoint_running_;  // held by whichever thread is checkpointing
  std::condition_variable checkpoint_wanted_;
  bool checkpoint_requested_ = false;
  bool checkpoint_stopping_ = false;
  SequenceMarks marks_;        // what the next sequence mark says; guarded by checkpoint_mutex_
  bool marks_dirty_ = false;   // marks_ changed since the last write; guarded by checkpoint_mutex_
  bool mark_failing_ = false;  // used by the checkpointer only
  std::thread checkpointer_;
};

SqliteStore::SqliteStore(std::string path, Durability durability)
    : impl_(std::make_unique<Impl>(std::move(path), durability)) {}
SqliteStore::~SqliteStore() = default;
StoredState SqliteStore::load_sessions(LoadScope scope) {
  return impl_->load(scope);
}
std::vector<core::SessionEvent> SqliteStore::read_events(std::string_view session_id,
                                                         std::uint64_t after, std::uint64_t through,
                                                         std::size_t limit) {
  return impl_->read_events(session_id, after, through, limit);
}
Ticket SqliteStore::submit(StoreWrite write) {
  return impl_->submit(std::visit(
      [](auto&& concrete) { return JournalWrite(std::forward<decltype(concrete)>(concrete)); },
      std::move(write)));
}
std::vector<StoredAuthSession> SqliteStore::load_tokens() {
  return impl_->load_tokens();
}
Ticket SqliteStore::save_token(const std::string& token_sha256, std::int64_t expires_unix_ms) {
  return impl_->submit(SaveAuthSession{token_sha256, expires_unix_ms});
}
Ticket SqliteStore::delete_token(const std::string& token_sha256) {
  return impl_->submit(DeleteAuthSession{token_sha256});
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
bool SqliteStore::failed() const {
  return impl_->failed();
}
const metrics::Histogram& SqliteStore::commit_seconds() const {
  return impl_->commit_seconds();
}

}  // namespace tau::store
