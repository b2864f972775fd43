#include "store/session_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "bridge/session_pool.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <numeric>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace tau::store {
namespace {

namespace fs = std::filesystem;
using core::SessionEvent;
using core::SessionStatus;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tau-store-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> names() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs SQL on a database file with a plain connection, as a tamperer or an old tool would.
void run_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// The message of the StoreError that `open` throws, or "" if it throws none.
template <class Open>
std::string store_error_of(Open&& open) {
  try {
    open();
  } catch (const StoreError& error) {
    return error.what();
  }
  return "";
}

// Lets a writer thread through once the test opens it; tells the test when the writer arrived.
class Gate {
 public:
  void pass() {
    std::unique_lock lock(mutex_);
    arrived_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
  }
  // False if the writer never comes (a broken store): the test fails instead of hanging.
  [[nodiscard]] bool wait_arrived() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(60), [&] { return arrived_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool arrived_ = false;
  bool open_ = false;
};

// Holds a SqliteStore's writer right after a commit (in the durable listener), so that the
// writes submitted meanwhile are committed together in the next batch.
class WriterPause {
 public:
  explicit WriterPause(SessionStore& store) : store_(store) {
    store_.set_durable_listener([gate = gate_](Ticket) { gate->pass(); });
    dynamic_cast<TokenStore&>(store_).delete_token("pause");
    if (!gate_->wait_arrived())
      ADD_FAILURE() << "the writer never called the durable listener";
  }
  ~WriterPause() {
    gate_->open();
    store_.set_durable_listener(nullptr);
  }

 private:
  SessionStore& store_;
  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
};

// ----- The contract, run against every store -------------------------------------------------

enum class Kind { memory, sqlite_normal, sqlite_full };

std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::memory:
      return "Memory";
    case Kind::sqlite_normal:
      return "SqliteNormal";
    case Kind::sqlite_full:
      return "SqliteFull";
  }
  return "Unknown";
}
void PrintTo(Kind kind, std::ostream* out) {
  *out << kind_name(kind);
}

class SessionStoreContract : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override { store_ = open(); }

  SessionStore& store() { return *store_; }

  // As at a restart: a new SqliteStore on the same file; MemoryStore keeps its one instance.
  SessionStore& reopen() {
    if (GetParam() != Kind::memory) {
      store_.reset();
      store_ = open();
    }
    return *store_;
  }
  StoredState reload() { return reopen().load(); }
  // Both local stores journal tokens beside sessions.
  TokenStore& tokens() { return dynamic_cast<TokenStore&>(*store_); }
  std::vector<StoredAuthSession> reload_tokens() {
    return dynamic_cast<TokenStore&>(reopen()).load_tokens();
  }

  // Makes the writes submitted while it lives land in one batch (nothing to do in memory).
  std::unique_ptr<WriterPause> pause_writer() {
    if (GetParam() == Kind::memory)
      return nullptr;
    return std::make_unique<WriterPause>(store());
  }

 private:
  std::unique_ptr<SessionStore> open() {
    switch (GetParam()) {
      case Kind::memory:
        return std::make_unique<MemoryStore>();
      case Kind::sqlite_normal:
        return std::make_unique<SqliteStore>(dir_.file("gateway.db"), Durability::normal);
      case Kind::sqlite_full:
        return std::make_unique<SqliteStore>(dir_.file("gateway.db"), Durability::full);
    }
    return nullptr;
  }

  TempDir dir_;  // outlives the store
  std::unique_ptr<SessionStore> store_;
};

SessionRecord make_record(const std::string& id, std::uint64_t last_sequence_id = 0) {
  SessionRecord record;
  record.snapshot.session_id = id;
  record.snapshot.workspace_id = "workspace-of-" + id;
  record.snapshot.status = SessionStatus::running;
  record.snapshot.started_unix_ms = 1'700'000'000'000;
  record.snapshot.last_activity_unix_ms = 1'700'000'000'000 + 1000 * last_sequence_id;
  record.last_sequence_id = last_sequence_id;
  return record;
}

SessionEvent make_event(std::uint64_t sequence_id, std::string message = "") {
  if (message.empty())
    message = "event " + std::to_string(sequence_id);
  return SessionEvent{sequence_id, "progress", std::move(message),
                      1'700'000'000'000 + static_cast<std::int64_t>(sequence_id)};
}

AppendEvent append(const std::string& id, std::uint64_t sequence_id,
                   std::uint64_t oldest_retained = 1) {
  return AppendEvent{make_record(id, sequence_id), make_event(sequence_id), oldest_retained, {}};
}

const StoredSession* find_session(const StoredState& state, const std::string& id) {
  for (const auto& session : state.sessions) {
    if (session.record.snapshot.session_id == id)
      return &session;
  }
  return nullptr;
}

// Every stored field; queued_followups is not stored, so not compared.
void expect_same_record(const SessionRecord& actual, const SessionRecord& expected) {
  EXPECT_EQ(actual.snapshot.session_id, expected.snapshot.session_id);
  EXPECT_EQ(actual.snapshot.workspace_id, expected.snapshot.workspace_id);
  EXPECT_EQ(actual.snapshot.status, expected.snapshot.status);
  EXPECT_EQ(actual.snapshot.started_unix_ms, expected.snapshot.started_unix_ms);
  EXPECT_EQ(actual.snapshot.last_activity_unix_ms, expected.snapshot.last_activity_unix_ms);
  EXPECT_EQ(actual.has_worker, expected.has_worker);
  EXPECT_EQ(actual.ended_unix_ms, expected.ended_unix_ms);
  EXPECT_EQ(actual.last_sequence_id, expected.last_sequence_id);
}

std::vector<std::uint64_t> sequence_ids(const StoredSession& session) {
  std::vector<std::uint64_t> ids;
  for (const auto& event : session.events)
    ids.push_back(event.sequence_id);
  return ids;
}

TEST_P(SessionStoreContract, EmptyStoreLoadsNothing) {
  const StoredState state = store().load();
  EXPECT_TRUE(state.sessions.empty());
  EXPECT_TRUE(tokens().load_tokens().empty());
  EXPECT_TRUE(reload().sessions.empty());
}

TEST_P(SessionStoreContract, SaveSessionRoundTripsEveryField) {
  const SessionStatus statuses[] = {SessionStatus::running, SessionStatus::completed,
                                    SessionStatus::failed, SessionStatus::timed_out,
                                    SessionStatus::closed};
  std::vector<SessionRecord> records;
  for (const SessionStatus status : statuses) {
    SessionRecord record = make_record("session-" + std::string(core::to_string(status)), 7);
    record.snapshot.status = status;
    record.snapshot.workspace_id = "wörkspace \"" + std::to_string(records.size()) + "\"";
    record.snapshot.started_unix_ms = -5 + static_cast<std::int64_t>(records.size());
    record.snapshot.last_activity_unix_ms = INT64_MAX - static_cast<std::int64_t>(records.size());
    record.snapshot.queued_followups = 3;
    record.has_worker = records.size() % 2 == 0;
    record.ended_unix_ms = status == SessionStatus::running ? 0 : 1'800'000'000'000;
    record.last_sequence_id = (std::uint64_t{1} << 40) + records.size();
    records.push_back(record);
    store().submit(SaveSession{record});
  }
  // A later save replaces the earlier one.
  records[0].snapshot.last_activity_unix_ms = 42;
  records[0].has_worker = false;
  store().submit(SaveSession{records[0]});
  store().flush();

  const StoredState state = reload();
  ASSERT_EQ(state.sessions.size(), records.size());
  for (const SessionRecord& record : records) {
    SCOPED_TRACE(record.snapshot.session_id);
    const StoredSession* loaded = find_session(state, record.snapshot.session_id);
    ASSERT_NE(loaded, nullptr);
    expect_same_record(loaded->record, record);
    EXPECT_TRUE(loaded->events.empty());
    EXPECT_TRUE(loaded->followups.empty());
  }
}

TEST_P(SessionStoreContract, AppendEventKeepsOrderAndEveryField) {
  const std::vector<std::string> messages = {"first", "", "line\nbreak, \"quotes\", ünïcødé ✓",
                                             std::string("nul\0inside", 10),
                                             std::string(70000, 'm')};
  std::vector<SessionEvent> events;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    SessionEvent event{i + 1, i % 2 ? "followup" : "progress", messages[i],
                       1'700'000'000'000 + static_cast<std::int64_t>(i) * 10};
    events.push_back(event);
    store().submit(AppendEvent{make_record("s", i + 1), event, 1, {}});
    if (i == 2)
      store().flush();  // across batches too
  }
  store().submit(append("other", 1));
  store().flush();

  const StoredState state = reload();
  const StoredSession* session = find_session(state, "s");
  ASSERT_NE(session, nullptr);
  expect_same_record(session->record, make_record("s", messages.size()));
  ASSERT_EQ(session->events.size(), events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(session->events[i].sequence_id, events[i].sequence_id);
    EXPECT_EQ(session->events[i].event_type, events[i].event_type);
    EXPECT_EQ(session->events[i].message, events[i].message);
    EXPECT_EQ(session->events[i].timestamp_unix_ms, events[i].timestamp_unix_ms);
  }
  ASSERT_NE(find_session(state, "other"), nullptr);
  EXPECT_EQ(find_session(state, "other")->events.size(), 1u);
}

TEST_P(SessionStoreContract, RetentionDropsEventsBelowOldestRetained) {
  // Keep the last three events of "s"; "t" keeps everything.
  for (std::uint64_t id = 1; id <= 10; ++id) {
    store().submit(append("s", id, id > 3 ? id - 2 : 1));
    store().submit(append("t", id));
    if (id == 5)
      store().flush();
  }
  store().flush();

  const StoredState state = reload();
  EXPECT_EQ(sequence_ids(*find_session(state, "s")), (std::vector<std::uint64_t>{8, 9, 10}));
  EXPECT_EQ(find_session(state, "t")->events.size(), 10u);
}

TEST_P(SessionStoreContract, RetentionAndDeletesReachEventsStoredBeforeARestart) {
  for (std::uint64_t id = 1; id <= 5; ++id) {
    store().submit(append("s", id));
    store().submit(append("d", id));
  }
  store().flush();
  reopen();
  store().submit(append("s", 6, 5));  // keep 5 and 6
  store().submit(DeleteSession{"d"});
  store().flush();

  const StoredState state = reload();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(sequence_ids(*find_session(state, "s")), (std::vector<std::uint64_t>{5, 6}));
  // A session's events only move forward, also across a restart.
  store().submit(append("s", 7));
  store().flush();
  EXPECT_EQ(sequence_ids(*find_session(reload(), "s")), (std::vector<std::uint64_t>{5, 6, 7}));
}

TEST_P(SessionStoreContract, FollowupsQueueAndDrainOldestFirst) {
  auto with_followup = [](std::uint64_t id, std::string followup) {
    AppendEvent write = append("s", id);
    write.queued_followup = std::move(followup);
    return write;
  };
  store().submit(with_followup(1, "a"));
  store().submit(with_followup(2, "b"));
  store().submit(append("s", 3));
  store().submit(with_followup(4, "c"));
  SessionRecord drained = make_record("s", 4);
  drained.snapshot.last_activity_unix_ms = 99;  // the drain's record is saved too
  store().submit(DrainFollowups{drained, 2});
  store().submit(with_followup(5, "d"));
  store().flush();

  StoredState state = reload();
  const StoredSession* session = find_session(state, "s");
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->followups, (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(session->events.size(), 5u);

  // Draining more than is queued empties the queue. (A record's counter never goes back: the
  // SQLite store keeps a session's highest one, see the sequence mark.)
  SessionRecord drained_again = make_record("s", 5);
  drained_again.snapshot.last_activity_unix_ms = 99;
  store().submit(DrainFollowups{drained_again, 10});
  store().flush();
  state = reload();
  session = find_session(state, "s");
  ASSERT_NE(session, nullptr);
  EXPECT_TRUE(session->followups.empty());
  expect_same_record(session->record, drained_again);
}

TEST_P(SessionStoreContract, DeleteSessionRemovesOnlyThatSession) {
  for (const std::string id : {"doomed", "kept"}) {
    for (std::uint64_t seq = 1; seq <= 3; ++seq) {
      AppendEvent write = append(id, seq);
      write.queued_followup = id + " followup " + std::to_string(seq);
      store().submit(write);
    }
  }
  store().flush();
  store().submit(DeleteSession{"doomed"});
  store().submit(DeleteSession{"never-existed"});
  store().flush();

  const StoredState state = reload();
  ASSERT_EQ(state.sessions.size(), 1u);
  const StoredSession* kept = find_session(state, "kept");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(sequence_ids(*kept), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(kept->followups.size(), 3u);

  // A new session under the deleted id starts empty: nothing of the old one comes back.
  store().submit(append("doomed", 1));
  store().flush();
  const StoredState again = reload();
  const StoredSession* reborn = find_session(again, "doomed");
  ASSERT_NE(reborn, nullptr);
  EXPECT_EQ(sequence_ids(*reborn), (std::vector<std::uint64_t>{1}));
  EXPECT_TRUE(reborn->followups.empty());
}

TEST_P(SessionStoreContract, AuthSessionsSaveReplaceAndDelete) {
  tokens().save_token("aaaa", 100);
  tokens().save_token("bbbb", 200);
  tokens().save_token("cccc", 300);
  tokens().save_token("aaaa", 150);
  tokens().delete_token("bbbb");
  tokens().delete_token("unknown");
  store().flush();

  std::vector<StoredAuthSession> stored = reload_tokens();
  std::sort(stored.begin(), stored.end(),
            [](const auto& a, const auto& b) { return a.token_sha256 < b.token_sha256; });
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].token_sha256, "aaaa");
  EXPECT_EQ(stored[0].expires_unix_ms, 150);
  EXPECT_EQ(stored[1].token_sha256, "cccc");
  EXPECT_EQ(stored[1].expires_unix_ms, 300);
  EXPECT_TRUE(store().load().sessions.empty());
}

TEST_P(SessionStoreContract, TicketsIncreaseFromOneAndBecomeDurable) {
  EXPECT_EQ(store().durable_ticket(), 0u);
  EXPECT_EQ(store().submit(SaveSession{make_record("a")}), 1u);
  EXPECT_EQ(store().submit(append("a", 1)), 2u);
  EXPECT_EQ(tokens().save_token("t", 1), 3u);

  std::atomic<int> reported{0};
  std::atomic<int> durable{0};
  for (Ticket ticket : {1u, 3u}) {
    store().when_durable(ticket, [&](bool ok) {
      ++reported;
      durable += ok;
    });
  }
  store().flush();
  EXPECT_EQ(store().durable_ticket(), 3u);
  EXPECT_EQ(reported.load(), 2);
  EXPECT_EQ(durable.load(), 2);
  EXPECT_EQ(store().info().pending_writes, 0u);
  EXPECT_FALSE(store().info().failed);
  EXPECT_FALSE(store().failed());

  // Already durable: reported at once, on this thread.
  bool now = false;
  store().when_durable(2, [&](bool ok) { now = ok; });
  EXPECT_TRUE(now);
}

TEST_P(SessionStoreContract, WritesApplyInSubmissionOrderWithinOneBatch) {
  store().submit(append("s", 1));
  tokens().save_token("token", 1);
  store().flush();
  {
    const auto pause = pause_writer();  // the writes below are committed together
    AppendEvent old_event = append("s", 2);
    old_event.queued_followup = "old";
    store().submit(old_event);
    SessionRecord first = make_record("s", 2);
    first.snapshot.workspace_id = "first";
    store().submit(SaveSession{first});
    store().submit(DeleteSession{"s"});
    SessionRecord second = make_record("s", 0);
    second.snapshot.workspace_id = "second";
    store().submit(SaveSession{second});
    AppendEvent new_event = append("s", 1);
    new_event.record.snapshot.workspace_id = "second";
    new_event.queued_followup = "new";
    store().submit(new_event);

    store().submit(DeleteSession{"gone"});
    store().submit(SaveSession{make_record("gone")});  // saved after its delete: it stays
    store().submit(SaveSession{make_record("brief")});
    store().submit(DeleteSession{"brief"});  // deleted after its save: it goes
    tokens().delete_token("token");
    tokens().save_token("token", 2);
  }
  store().flush();

  const StoredState state = reload();
  const StoredSession* session = find_session(state, "s");
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->record.snapshot.workspace_id, "second");
  ASSERT_EQ(session->events.size(), 1u);
  EXPECT_EQ(session->events[0].message, "event 1");
  EXPECT_EQ(session->events[0].timestamp_unix_ms, make_event(1).timestamp_unix_ms);
  EXPECT_EQ(session->followups, (std::vector<std::string>{"new"}));
  EXPECT_NE(find_session(state, "gone"), nullptr);
  EXPECT_EQ(find_session(state, "brief"), nullptr);
  const std::vector<StoredAuthSession> stored = tokens().load_tokens();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].expires_unix_ms, 2);
}

// Typed events carry a structured payload: it comes back with the event from every read, across
// restarts, and events without one come back without one.
TEST_P(SessionStoreContract, EventDataRoundTripsThroughEveryRead) {
  SessionEvent typed = make_event(1);
  typed.event_type = "agent.tool_call";
  typed.data = R"({"tool":"edit","path":"a \"b\".cpp","lines":[1,2],"note":"ünïcødé\n"})";
  store().submit(AppendEvent{make_record("s", 1), typed, 1, {}});
  store().submit(append("s", 2));  // no data
  SessionRecord ended = make_record("e", 1);
  ended.snapshot.status = SessionStatus::completed;
  ended.ended_unix_ms = 1'800'000'000'000;
  store().submit(AppendEvent{ended, typed, 1, {}});
  store().flush();

  const StoredState state = reload();
  const StoredSession* session = find_session(state, "s");
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(session->events.size(), 2u);
  EXPECT_EQ(session->events[0].event_type, "agent.tool_call");
  EXPECT_EQ(session->events[0].data, typed.data);
  EXPECT_EQ(session->events[1].data, "");
  ASSERT_NE(find_session(state, "e"), nullptr);
  ASSERT_EQ(find_session(state, "e")->events.size(), 1u);
  EXPECT_EQ(find_session(state, "e")->events[0].data, typed.data);

  // After another restart, with ended sessions' events left on disk and read back on demand.
  SessionStore& reopened = reopen();
  const StoredState running_only = reopened.load_sessions(LoadScope::running_events);
  const StoredSession* running = find_session(running_only, "s");
  ASSERT_NE(running, nullptr);
  ASSERT_EQ(running->events.size(), 2u);
  EXPECT_EQ(running->events[0].data, typed.data);
  EXPECT_EQ(running->events[1].data, "");
  if (reopened.reads_events()) {
    const auto read = reopened.read_events("s", 0, 2, 10);
    ASSERT_EQ(read.size(), 2u);
    EXPECT_EQ(read[0].data, typed.data);
    EXPECT_EQ(read[1].data, "");
    const auto on_disk = reopened.read_events("e", 0, 1, 10);
    ASSERT_EQ(on_disk.size(), 1u);
    EXPECT_EQ(on_disk[0].data, typed.data);
  }

  // Appended after the restart, data is kept as well.
  SessionEvent later = make_event(3);
  later.data = R"({"step":3})";
  reopened.submit(AppendEvent{make_record("s", 3), later, 1, {}});
  reopened.flush();
  const StoredState reloaded = reload();
  const StoredSession* again = find_session(reloaded, "s");
  ASSERT_NE(again, nullptr);
  ASSERT_EQ(again->events.size(), 3u);
  EXPECT_EQ(again->events[0].data, typed.data);
  EXPECT_EQ(again->events[1].data, "");
  EXPECT_EQ(again->events[2].data, later.data);
}

INSTANTIATE_TEST_SUITE_P(Stores, SessionStoreContract,
                         ::testing::Values(Kind::memory, Kind::sqlite_normal, Kind::sqlite_full),
                         [](const auto& info) { return kind_name(info.param); });

// ----- SQLite only ---------------------------------------------------------------------------

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> open(Durability durability = Durability::normal) {
    return std::make_unique<SqliteStore>(path_, durability);
  }
  // A database with one session and one event, closed again.
  void create_database() {
    auto store = open();
    store->submit(append("s", 1));
    store->flush();
  }

  TempDir dir_;
  const std::string path_ = dir_.file("gateway.db");
};

TEST_F(SqliteStoreTest, NewFileIsPrivateAndInfoDescribesIt) {
  auto store = open(Durability::full);
  struct stat status {};
  ASSERT_EQ(stat(path_.c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 0777, 0600u);

  store->submit(append("s", 1));
  store->flush();
  const StoreInfo info = store->info();
  EXPECT_EQ(info.kind, "sqlite");
  EXPECT_EQ(info.path, path_);
  EXPECT_EQ(info.durability, "full");
  EXPECT_EQ(info.database_bytes, fs::file_size(path_) + fs::file_size(path_ + "-wal"));
  EXPECT_GT(info.database_bytes, 0u);
  EXPECT_EQ(info.pending_writes, 0u);
  EXPECT_EQ(info.commits, 1u);
  EXPECT_FALSE(info.failed);
}

TEST_F(SqliteStoreTest, AnEmptyExistingFileBecomesADatabase) {
  write_bytes(path_, "");
  {
    auto store = open();
    EXPECT_TRUE(store->load().sessions.empty());
    store->submit(append("s", 1));
  }
  EXPECT_EQ(open()->load().sessions.size(), 1u);
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotADatabaseAndLeavesItAlone) {
  const std::string bytes(4096, 'x');
  write_bytes(path_, bytes);
  const std::string message = store_error_of([&] { open(); });
  EXPECT_TRUE(contains(message, path_));
  EXPECT_TRUE(contains(message, "not a database"));
  EXPECT_EQ(read_bytes(path_), bytes);
  EXPECT_EQ(dir_.names(), std::vector<std::string>{"gateway.db"});
}

TEST_F(SqliteStoreTest, RefusesADatabaseWithADamagedHeaderAndLeavesItAlone) {
  create_database();
  std::string bytes = read_bytes(path_);
  ASSERT_GT(bytes.size(), 100u);
  bytes.replace(0, 16, "not sqlite, no!!");
  write_bytes(path_, bytes);
  const std::string message = store_error_of([&] { open(); });
  EXPECT_TRUE(contains(message, path_));
  EXPECT_EQ(read_bytes(path_), bytes);
}

// The schema this store wrote at version 1 (before events had data), as a gateway of that time
// left it.
constexpr const char* kSchemaVersion1 = R"sql(
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
PRAGMA user_version = 1;
)sql";

std::int64_t user_version_of(const std::string& path) {
  sqlite3* db = nullptr;
  std::int64_t version = -1;
  if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW)
      version = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
  }
  sqlite3_close(db);
  return version;
}

TEST_F(SqliteStoreTest, AVersionOneDatabaseIsMigratedAndItsEventsHaveNoData) {
  run_sql(path_, std::string(kSchemaVersion1) +
                     "INSERT INTO sessions VALUES ('s', 'ws', 'running', 1000, 2000, 0, 0, 1);"
                     "INSERT INTO events (session_id, sequence_id, event_type, message,"
                     " timestamp_unix_ms) VALUES ('s', 1, 'progress', 'from version 1', 2000);");
  ASSERT_EQ(user_version_of(path_), 1);
  {
    auto store = open();
    const StoredState state = store->load();
    const StoredSession* session = find_session(state, "s");
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(session->record.last_sequence_id, 1u);
    ASSERT_EQ(session->events.size(), 1u);
    EXPECT_EQ(session->events[0].message, "from version 1");
    EXPECT_EQ(session->events[0].timestamp_unix_ms, 2000);
    EXPECT_EQ(session->events[0].data, "");

    SessionEvent typed = make_event(2);
    typed.data = R"({"kind":"after the migration"})";
    store->submit(AppendEvent{make_record("s", 2), typed, 1, {}});
    store->flush();
  }
  EXPECT_EQ(user_version_of(path_), SqliteStore::kSchemaVersion);

  auto store = open();
  const StoredState state = store->load();
  const StoredSession* session = find_session(state, "s");
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(session->events.size(), 2u);
  EXPECT_EQ(session->events[0].message, "from version 1");
  EXPECT_EQ(session->events[0].data, "");
  EXPECT_EQ(session->events[1].data, R"({"kind":"after the migration"})");
  const auto read = store->read_events("s", 0, 2, 10);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].data, "");
  EXPECT_EQ(read[1].data, R"({"kind":"after the migration"})");
}

TEST_F(SqliteStoreTest, RefusesANewerSchemaAndLeavesTheFileAlone) {
  create_database();
  run_sql(path_, "PRAGMA user_version = " + std::to_string(SqliteStore::kSchemaVersion + 1));
  const std::string bytes = read_bytes(path_);
  const std::string message = store_error_of([&] { open(); });
  EXPECT_TRUE(contains(message, path_));
  EXPECT_TRUE(contains(message, "newer"));
  EXPECT_TRUE(contains(message, std::to_string(SqliteStore::kSchemaVersion + 1)));
  EXPECT_EQ(read_bytes(path_), bytes);
  // No WAL left behind either (the sequence mark is create_database()'s).
  EXPECT_EQ(dir_.names(), (std::vector<std::string>{"gateway.db", "gateway.db.seqmark"}));
}

TEST_F(SqliteStoreTest, RefusesANewerSchemaStillInALeftoverWalAndLeavesBothFilesAlone) {
  create_database();
  // A newer gateway "crashes" with its last commit only in the WAL: copy the files while its
  // connection is open and has not checkpointed.
  const std::string copy = dir_.file("crashed.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const std::string sql = "PRAGMA wal_autocheckpoint = 0; PRAGMA user_version = " +
                            std::to_string(SqliteStore::kSchemaVersion + 1);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    fs::copy_file(path_, copy);
    fs::copy_file(path_ + "-wal", copy + "-wal");
    sqlite3_close(db);
  }
  const std::string main_bytes = read_bytes(copy);
  const std::string wal_bytes = read_bytes(copy + "-wal");
  ASSERT_GT(wal_bytes.size(), 0u);

  const std::string message = store_error_of([&] { SqliteStore(copy, Durability::normal); });
  EXPECT_TRUE(contains(message, copy));
  EXPECT_TRUE(contains(message, "newer"));
  EXPECT_EQ(read_bytes(copy), main_bytes);
  EXPECT_EQ(read_bytes(copy + "-wal"), wal_bytes);
}

TEST_F(SqliteStoreTest, RefusesAnEmptyOrMissingMainFileBesideItsWalAndLeavesTheWalAlone) {
  for (const bool missing : {false, true}) {
    SCOPED_TRACE(missing ? "missing" : "empty");
    const std::string wal = "pretend write-ahead log with history in it";
    write_bytes(path_ + "-wal", wal);
    if (missing)
      fs::remove(path_);
    else
      write_bytes(path_, "");
    const std::string message = store_error_of([&] { open(); });
    EXPECT_TRUE(contains(message, path_));
    EXPECT_TRUE(contains(message, missing ? "missing" : "empty"));
    EXPECT_EQ(fs::exists(path_), !missing);
    EXPECT_EQ(read_bytes(path_ + "-wal"), wal);
    fs::remove(path_ + "-wal");
  }
}

TEST_F(SqliteStoreTest, RefusesADatabaseThatFailsItsIntegrityCheck) {
  {
    auto store = open();
    for (int i = 0; i < 300; ++i)
      store->submit(SaveSession{make_record("session-with-a-long-id-" + std::to_string(i))});
    store->flush();
  }  // closing checkpoints everything into the main file
  // Damage only the sessions' primary-key index: loading scans the table and would not notice.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* query = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT rootpage FROM sqlite_master"
                               " WHERE name = 'sqlite_autoindex_sessions_1'",
                               -1, &query, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(query), SQLITE_ROW);
  const auto root_page = sqlite3_column_int64(query, 0);
  sqlite3_finalize(query);
  sqlite3_close(db);
  std::string bytes = read_bytes(path_);
  const auto offset = static_cast<std::size_t>(root_page - 1) * 4096;
  ASSERT_GT(bytes.size(), offset + 4096);
  bytes.replace(offset + 8, 1000, std::string(1000, '\xff'));
  write_bytes(path_, bytes);

  const std::string message = store_error_of([&] { open(); });
  EXPECT_TRUE(contains(message, path_));
  EXPECT_TRUE(contains(message, "integrity check"));
  EXPECT_EQ(read_bytes(path_), bytes);
}

TEST_F(SqliteStoreTest, UnknownStatusOnLoadIsReportedAsCorrupt) {
  create_database();
  run_sql(path_, "UPDATE sessions SET status = 'exploded'");
  auto store = open();
  const std::string message = store_error_of([&] { store->load(); });
  EXPECT_TRUE(contains(message, path_));
  EXPECT_TRUE(contains(message, "exploded"));
}

TEST_F(SqliteStoreTest, ASecondStoreOnTheSameFileIsRefusedWhileTheFirstIsOpen) {
  auto first = open();
  first->submit(append("s", 1));
  first->flush();
  const std::string message = store_error_of([&] { open(); });
  EXPECT_TRUE(contains(message, path_));
  EXPECT_TRUE(contains(message, "in use"));

  // The first one is unharmed, and the file is free again once it is closed.
  first->submit(append("s", 2));
  first->flush();
  EXPECT_FALSE(first->info().failed);
  first.reset();
  EXPECT_EQ(find_session(open()->load(), "s")->events.size(), 2u);
}

TEST_F(SqliteStoreTest, WritesFromManyThreadsAreGroupCommitted) {
  constexpr int kThreads = 4;
  constexpr std::uint64_t kEventsPerThread = 2500;
  auto store = open();
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&store, t] {
        const std::string id = "thread-" + std::to_string(t);
        for (std::uint64_t seq = 1; seq <= kEventsPerThread; ++seq)
          store->submit(append(id, seq));
      });
    }
  }
  store->flush();
  const StoreInfo info = store->info();
  EXPECT_EQ(store->durable_ticket(), kThreads * kEventsPerThread);
  EXPECT_EQ(info.durability, "normal");
  EXPECT_EQ(info.pending_writes, 0u);
  EXPECT_GE(info.commits, 1u);
  EXPECT_LT(info.commits, kThreads * kEventsPerThread);

  store.reset();
  const StoredState state = open()->load();
  ASSERT_EQ(state.sessions.size(), static_cast<std::size_t>(kThreads));
  std::vector<std::uint64_t> expected(kEventsPerThread);
  std::iota(expected.begin(), expected.end(), 1);
  for (const auto& session : state.sessions) {
    EXPECT_EQ(sequence_ids(session), expected);
    EXPECT_EQ(session.record.last_sequence_id, kEventsPerThread);
  }
}

TEST_F(SqliteStoreTest, DurableListenerHearsEveryCommitUpToTheLastTicket) {
  auto store = open();
  std::vector<Ticket> heard;  // only the writer thread appends, and flush() orders it before us
  store->set_durable_listener([&](Ticket ticket) { heard.push_back(ticket); });
  Ticket last = 0;
  for (std::uint64_t seq = 1; seq <= 500; ++seq)
    last = store->submit(append("s", seq));
  store->flush();
  ASSERT_FALSE(heard.empty());
  EXPECT_EQ(heard.back(), last);
  EXPECT_TRUE(std::is_sorted(heard.begin(), heard.end()));
  EXPECT_EQ(heard.size(), store->info().commits);
}

TEST_F(SqliteStoreTest, ATicketIsNotReportedDurableBeforeItsCommit) {
  auto store = open();
  auto gate = std::make_shared<Gate>();
  store->set_durable_listener([gate](Ticket) { gate->pass(); });
  const Ticket first = store->submit(append("s", 1));
  ASSERT_TRUE(gate->wait_arrived());  // the writer committed `first` and is held in the listener

  const Ticket second = store->submit(append("s", 2));
  std::atomic<int> calls{0};
  std::atomic<bool> result{false};
  store->when_durable(second, [&](bool ok) {
    result = ok;
    ++calls;
  });
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(store->durable_ticket(), first);
  EXPECT_EQ(store->info().pending_writes, 1u);

  bool first_now = false;
  store->when_durable(first, [&](bool ok) { first_now = ok; });  // durable: answered at once
  EXPECT_TRUE(first_now);

  gate->open();
  store->flush();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(result.load());
  EXPECT_EQ(store->durable_ticket(), second);
}

TEST_F(SqliteStoreTest, AFailedCommitIsNeverAcknowledgedAndStopsTheStore) {
  auto store = open();
  store->submit(append("s", 1));
  store->flush();

  // The same event twice violates the events primary key: the batch cannot commit.
  std::atomic<int> calls{0};
  std::atomic<int> acknowledged{0};
  auto count = [&](bool ok) {
    ++calls;
    acknowledged += ok;
  };
  std::unique_ptr<WriterPause> pause = std::make_unique<WriterPause>(*store);
  const Ticket good = store->submit(append("other", 1));
  const Ticket bad = store->submit(append("s", 1));
  store->when_durable(good, count);
  store->when_durable(bad, count);
  pause.reset();
  store->flush();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(acknowledged.load(), 0);  // the whole batch failed, good write included
  EXPECT_TRUE(store->info().failed);
  EXPECT_TRUE(store->failed());
  EXPECT_LT(store->durable_ticket(), good);

  // Later writes are refused as well; flush() does not hang.
  const Ticket later = store->submit(append("s", 2));
  store->when_durable(later, count);
  store->flush();
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(acknowledged.load(), 0);
  EXPECT_GE(store->info().pending_writes, 3u);

  store.reset();
  const StoredState state = open()->load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(sequence_ids(state.sessions[0]), (std::vector<std::uint64_t>{1}));
}

TEST_F(SqliteStoreTest, RetentionKeepsTheFileFromGrowingUnderSteadyLoad) {
  constexpr std::uint64_t kKeep = 100;
  // 80 MB of events in all: without retention and checkpoints the files would hold all of it.
  const std::string message(1000, 'e');
  // The WAL's 16 MiB hard limit, plus what is written while the checkpointer holds it off.
  constexpr std::uint64_t kBound = 32u << 20;
  auto store = open();
  std::uint64_t largest_main = 0;
  std::uint64_t largest_total = 0;
  for (std::uint64_t seq = 1; seq <= 80'000; ++seq) {
    AppendEvent write = append("s", seq, seq > kKeep ? seq - kKeep + 1 : 1);
    write.event.message = message;
    store->submit(std::move(write));
    if (seq % 100 == 0) {
      store->flush();  // a steady producer, not one giant batch
      largest_main = std::max<std::uint64_t>(largest_main, fs::file_size(path_));
      largest_total = std::max(largest_total, store->info().database_bytes);
    }
  }
  RecordProperty("largest_main_bytes", std::to_string(largest_main));
  RecordProperty("largest_total_bytes", std::to_string(largest_total));
  EXPECT_LT(largest_main, 2u << 20);  // retention: the database holds ~100 events
  EXPECT_LT(largest_total, kBound);   // checkpoints: the WAL is started over

  store.reset();
  EXPECT_LT(fs::file_size(path_), 1u << 20);  // closed: the WAL is folded in and removed
  const StoredState state = open()->load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].events.size(), kKeep);
  EXPECT_EQ(state.sessions[0].events.front().sequence_id, 80'000 - kKeep + 1);
}

// ----- The sequence mark: ids never handed out twice after a lost WAL tail -------------------

std::string mark_path_of(const std::string& database_path) {
  return database_path + ".seqmark";
}

// Waits (up to 30 s) until `done` holds; false if it never does.
bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Whether the mark file records `sequence_id` for `session_id`.
bool mark_says(const std::string& database_path, const std::string& session_id,
               std::uint64_t sequence_id) {
  return contains(read_bytes(mark_path_of(database_path)),
                  "\n" + std::to_string(sequence_id) + " " + session_id + "\n");
}

enum class WalDamage { truncated_at_commit, truncated_mid_frame, garbled };

// What the crashed machine's disk holds: the database, its WAL with everything after
// `intact_bytes` lost in the way `damage` says, and the sequence mark.
void copy_damaged(const std::string& from, const std::string& to, std::uint64_t intact_bytes,
                  WalDamage damage) {
  fs::copy_file(from, to);
  fs::copy_file(mark_path_of(from), mark_path_of(to));
  std::string wal = read_bytes(from + "-wal");
  ASSERT_GT(wal.size(), intact_bytes + 8192);
  switch (damage) {
    case WalDamage::truncated_at_commit:
      wal.resize(intact_bytes);
      break;
    case WalDamage::truncated_mid_frame:
      wal.resize(intact_bytes + 4096);  // a frame is a 24-byte header and a 4096-byte page
      break;
    case WalDamage::garbled:
      for (std::size_t i = intact_bytes + 100; i < intact_bytes + 2000; ++i)
        wal[i] = static_cast<char>(wal[i] ^ 0x5a);
      break;
  }
  write_bytes(to + "-wal", wal);
}

// The attack: a WAL whose tail was lost made the gateway start with part of a session's history
// and then hand its next event an id (21 here) that an acknowledged event already had.
TEST_F(SqliteStoreTest, ALostWalTailNeverBringsBackASequenceIdBelowTheMark) {
  for (const WalDamage damage :
       {WalDamage::truncated_at_commit, WalDamage::truncated_mid_frame, WalDamage::garbled}) {
    SCOPED_TRACE(static_cast<int>(damage));
    TempDir dir;
    const std::string path = dir.file("gateway.db");
    const std::string crashed = dir.file("crashed.db");
    {
      SqliteStore first(path, Durability::normal);
      for (std::uint64_t seq = 1; seq <= 10; ++seq)
        first.submit(append("s", seq));
    }  // closed: events 1-10 are in the main file
    SqliteStore store(path, Durability::normal);
    for (std::uint64_t seq = 11; seq <= 20; ++seq)
      store.submit(append("s", seq));
    store.flush();
    const std::uint64_t wal_through_20 = fs::file_size(path + "-wal");
    for (std::uint64_t seq = 21; seq <= 40; ++seq) {
      AppendEvent write = append("s", seq);
      write.event.message = std::string(1000, 'm');  // several WAL frames per commit
      store.submit(std::move(write));
      store.flush();
    }
    ASSERT_TRUE(eventually([&] { return mark_says(path, "s", 40); }))
        << read_bytes(mark_path_of(path));
    copy_damaged(path, crashed, wal_through_20, damage);

    auto reopened = std::make_shared<SqliteStore>(crashed, Durability::normal);
    StoredState state = reopened->load();
    ASSERT_EQ(state.sessions.size(), 1u);
    EXPECT_EQ(sequence_ids(state.sessions[0]).back(), 20u);     // the history up to the damage
    EXPECT_EQ(state.sessions[0].record.last_sequence_id, 40u);  // the counter past the mark

    // The session pool above continues past every id acknowledged before the mark was written.
    {
      bridge::SessionPool pool(
          bridge::PoolLimits{}, [] { return std::int64_t{1'700'000'100'000}; }, nullptr, nullptr,
          reopened);
      reopened->when_durable(pool.restore(std::move(state.sessions)), [](bool) {});
      const auto appended = pool.append_event("s", "progress", "after the damage");
      EXPECT_EQ(appended.event.sequence_id, 41u);
    }
    reopened.reset();
    const StoredState after = SqliteStore(crashed, Durability::normal).load();
    ASSERT_EQ(after.sessions.size(), 1u);
    EXPECT_EQ(after.sessions[0].record.last_sequence_id, 41u);
    EXPECT_EQ(sequence_ids(after.sessions[0]).back(), 41u);
  }
}

TEST_F(SqliteStoreTest, AfterACleanCloseTheMarkIsExactAndCostsNoIds) {
  {
    auto store = open();
    for (std::uint64_t seq = 1; seq <= 5; ++seq)
      store->submit(append("s", seq));
    store->submit(append("gone", 3));
    store->submit(DeleteSession{"gone"});
  }
  EXPECT_TRUE(mark_says(path_, "s", 5));
  EXPECT_FALSE(contains(read_bytes(mark_path_of(path_)), "gone"));
  const StoredState state = open()->load();
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions[0].record.last_sequence_id, 5u);
  EXPECT_EQ(sequence_ids(state.sessions[0]).size(), 5u);
}

TEST_F(SqliteStoreTest, AMissingMarkIsStartedAfreshFromTheDatabase) {
  {
    auto store = open();
    for (std::uint64_t seq = 1; seq <= 3; ++seq)
      store->submit(append("s", seq));
  }
  fs::remove(mark_path_of(path_));
  {
    auto store = open();
    EXPECT_EQ(store->load().sessions.at(0).record.last_sequence_id, 3u);
    // Written without waiting for a commit: the database already holds a session.
    EXPECT_TRUE(eventually([&] { return fs::exists(mark_path_of(path_)); }));
  }
  EXPECT_TRUE(mark_says(path_, "s", 3));
}

TEST_F(SqliteStoreTest, RefusesADamagedMarkAndLeavesEverythingAlone) {
  {
    auto store = open();
    for (std::uint64_t seq = 1; seq <= 3; ++seq)
      store->submit(append("s", seq));
  }
  std::string mark = read_bytes(mark_path_of(path_));
  const auto line = mark.find("\n3 s\n");
  ASSERT_NE(line, std::string::npos) << mark;
  mark[line + 1] = '2';  // a lower mark would let ids be reused: the checksum catches it
  write_bytes(mark_path_of(path_), mark);
  const std::string database = read_bytes(path_);

  const std::string message = store_error_of([&] { open(); });
  EXPECT_TRUE(contains(message, mark_path_of(path_)));
  EXPECT_TRUE(contains(message, "damaged"));
  EXPECT_EQ(read_bytes(mark_path_of(path_)), mark);
  EXPECT_EQ(read_bytes(path_), database);
  EXPECT_EQ(dir_.names(), (std::vector<std::string>{"gateway.db", "gateway.db.seqmark"}));
}

}  // namespace
}  // namespace tau::store
