// Durability over HTTP against the real binary and a real SQLite file: what was acknowledged
// survives a clean restart and a SIGKILL, and a database the gateway cannot trust stops it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <set>
#include <thread>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

std::vector<std::string> gateway_args(const TempDir& state, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {
      "--auth-mode", "localhost-dev", "--state-dir", state.path(), "--rate-limit-max-requests",
      "100000000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string database_path(const TempDir& state) {
  return state.path() + "/gateway.db";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> ids_of(const std::vector<SseMessage>& events) {
  std::vector<std::string> ids;
  for (const auto& event : events)
    ids.push_back(event.id);
  return ids;
}

TEST(Durability, ARestartKeepsSessionsEventsQueuesAndCursors) {
  TempDir state;
  std::string running, closed;
  json::value running_before, closed_before;
  {
    GatewayProcess gateway(gateway_args(state));
    HttpClient client(gateway.port());
    running = open_session(client, "repo-a");
    closed = open_session(client, "repo-b");
    for (const char* message : {"one", "two", "three"}) {
      ASSERT_EQ(
          client.post(session_path(running, "/progress"), json_body({{"message", message}})).status,
          200u);
    }
    for (const char* message : {"f1", "f2", "f3"}) {
      ASSERT_EQ(client.post(session_path(running, "/followups"), json_body({{"message", message}}))
                    .status,
                200u);
    }
    ASSERT_EQ(client.post(session_path(running, "/followups/drain"), json_body({{"limit", 1}}))
                  .json()
                  .at("followups"),
              json::parse(R"(["f1"])"));
    ASSERT_EQ(client.post(session_path(closed, "/progress"), json_body({{"message", "x"}})).status,
              200u);
    ASSERT_EQ(client.post(session_path(closed, "/close"), "").status, 200u);
    running_before = client.get(session_path(running)).json();
    closed_before = client.get(session_path(closed)).json();
    EXPECT_EQ(gateway.stop(), 0);
  }
  GatewayProcess gateway(gateway_args(state));
  HttpClient client(gateway.port());
  EXPECT_EQ(client.get(session_path(running)).json(), running_before);
  EXPECT_EQ(client.get(session_path(closed)).json(), closed_before);
  EXPECT_EQ(open_session(client, "repo-a"), running);  // still the workspace's session

  // Replays by cursor and by Last-Event-ID are exactly as before.
  const auto all = replayed_events(client, running);
  EXPECT_EQ(ids_of(all), (std::vector<std::string>{"1", "2", "3", "4", "5", "6"}));
  EXPECT_EQ(json::parse(all[0].data).at("message"), "one");
  EXPECT_EQ(json::parse(all[5].data).at("message"), "f3");
  EXPECT_EQ(ids_of(replayed_events(client, running, "?after_sequence_id=4")),
            (std::vector<std::string>{"5", "6"}));
  EXPECT_EQ(ids_of(replayed_events(client, running, "", {{"Last-Event-ID", "5"}})),
            (std::vector<std::string>{"6"}));

  // The queue holds what was not drained, and new events continue the sequence.
  EXPECT_EQ(client.post(session_path(running, "/followups/drain"), "").json().at("followups"),
            json::parse(R"(["f2","f3"])"));
  const auto next = client.post(session_path(running, "/progress"), json_body({{"message", "n"}}));
  EXPECT_EQ(next.json().at("event").at("sequence_id").as_int64(), 7);
  EXPECT_EQ(
      client.post(session_path(closed, "/progress"), json_body({{"message", "x"}})).error_code(),
      "external_coding_agent_session_not_running");

  const auto store = status_runtime(client).at("store");
  EXPECT_EQ(store.at("kind"), "sqlite");
  EXPECT_EQ(store.at("path").as_string(), database_path(state));
  EXPECT_EQ(store.at("durability"), "normal");
  EXPECT_GT(store.at("database_bytes").as_int64(), 0);
}

// The gateway's resident memory (VmRSS), in bytes.
std::uint64_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoull(line.substr(6)) * 1024;  // "VmRSS:   12345 kB"
  }
  return 0;
}

TEST(Durability, AThousandEndedSessionsStayWithinTheEventMemoryBudgetAndReplayIdentically) {
  constexpr std::uint64_t kBudget = 16 << 20;
  constexpr int kSessions = 1000;
  constexpr int kEvents = 2;  // of 64 KiB: 125 MiB of messages, twice that with their encodings
  TempDir state;
  const auto args = gateway_args(
      state, {"--max-event-memory-bytes", std::to_string(kBudget), "--max-input-chars", "65536"});
  auto message_of = [](int session, int event) {
    std::string text = std::to_string(session) + "/" + std::to_string(event) + " ";
    text.resize(65536, static_cast<char>('a' + (session * 3 + event) % 26));
    return text;
  };
  auto expect_replays = [&](const HttpClient& client, const std::vector<std::string>& ids) {
    for (int s = 0; s < kSessions; s += 111) {
      const auto events = replayed_events(client, ids[s]);
      ASSERT_EQ(events.size(), static_cast<std::size_t>(kEvents)) << s;
      for (int e = 1; e <= kEvents; ++e) {
        const json::value event = json::parse(events[e - 1].data);
        EXPECT_EQ(event.at("sequence_id").as_int64(), e);
        EXPECT_EQ(event.at("message").as_string(), message_of(s, e)) << s << "/" << e;
      }
    }
  };
  std::vector<std::string> ids;
  {
    GatewayProcess gateway(args);
    HttpClient client(gateway.port());
    for (int s = 0; s < kSessions; ++s) {
      ids.push_back(open_session(client, "w" + std::to_string(s)));
      for (int e = 1; e <= kEvents; ++e) {
        ASSERT_EQ(client
                      .post(session_path(ids.back(), "/progress"),
                            json_body({{"message", message_of(s, e)}}))
                      .status,
                  200u);
      }
      ASSERT_EQ(client.post(session_path(ids.back(), "/close"), "").status, 200u);
    }
    const json::value memory = status_runtime(client).at("event_memory");
    EXPECT_LE(memory.at("held_bytes").as_int64(), static_cast<std::int64_t>(kBudget));
    EXPECT_EQ(memory.at("budget_bytes").as_int64(), static_cast<std::int64_t>(kBudget));
    EXPECT_GT(memory.at("events_let_go").as_int64(), 0);
    const std::uint64_t resident = resident_bytes(gateway.pid());
    std::cerr << "gateway RSS after 1,000 sessions: " << resident / 1024 << " KiB\n";
#ifndef TAU_SANITIZED  // sanitizers keep freed memory in quarantine and shadow it
    EXPECT_LT(resident, kBudget + (64 << 20));
#endif
    expect_replays(client, ids);
    EXPECT_EQ(gateway.stop(), 0);
  }
  // Restarted, the ended sessions' events stay on disk until they are asked for.
  GatewayProcess gateway(args);
  HttpClient client(gateway.port());
  EXPECT_EQ(status_runtime(client).at("event_memory").at("held_bytes").as_int64(), 0);
#ifndef TAU_SANITIZED
  EXPECT_LT(resident_bytes(gateway.pid()), kBudget + (64 << 20));
#endif
  expect_replays(client, ids);
}

TEST(Durability, MemoryStoreForgetsEverythingOnRestart) {
  TempDir state;
  std::string id;
  {
    GatewayProcess gateway(gateway_args(state, {"--store", "memory"}));
    HttpClient client(gateway.port());
    id = open_session(client, "w");
    EXPECT_EQ(status_runtime(client).at("store").at("kind"), "memory");
  }
  GatewayProcess gateway(gateway_args(state, {"--store", "memory"}));
  HttpClient client(gateway.port());
  EXPECT_EQ(client.get(session_path(id)).status, 404u);
  EXPECT_FALSE(std::filesystem::exists(database_path(state)));
}

TEST(Durability, PasswordSessionTokensStayValidAcrossARestart) {
  TempDir state;
  const std::vector<std::string> args = {"--auth-mode", "password-session", "--auth-password",
                                         "pw",          "--state-dir",      state.path()};
  std::string token;
  {
    GatewayProcess gateway(args);
    const auto login =
        HttpClient(gateway.port()).post("/gateway/auth/session", json_body({{"password", "pw"}}));
    ASSERT_EQ(login.status, 200u) << login.body;
    token = std::string(login.json().at("access_token").as_string());
  }
  // The database holds no usable token.
  EXPECT_EQ(read_file(database_path(state)).find(token), std::string::npos);
  GatewayProcess gateway(args);
  EXPECT_EQ(HttpClient(gateway.port(), token).get("/gateway/status").status, 200u);
  EXPECT_EQ(HttpClient(gateway.port(), token + "0").get("/gateway/status").status, 401u);
}

TEST(Durability, ASessionWhoseWorkerWasLostFailsWithARestartEvent) {
  TempDir state;
  std::string with_worker;
  {
    GatewayProcess gateway(
        gateway_args(state, {"--worker-command", "/bin/sleep", "--worker-arg", "1000"}));
    with_worker = open_session(HttpClient(gateway.port()), "w");
    // A crash: no chance to record the worker's end.
    EXPECT_EQ(gateway.crash(), 128 + SIGKILL);
  }
  GatewayProcess gateway(gateway_args(state));
  HttpClient client(gateway.port());
  EXPECT_EQ(client.get(session_path(with_worker)).json().at("session").at("status"), "failed");
  const auto events = replayed_events(client, with_worker);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(json::parse(events.back().data).at("event_type"), "gateway.restart");
  EXPECT_NE(open_session(client, "w"), with_worker);  // the workspace can be opened again
}

// 16 clients append as fast as they can; the gateway is killed mid-load. Every append that got a
// 200 must be there after a restart, exactly once, in order, with no gap in the sequence ids.
TEST(Durability, NothingAcknowledgedIsLostWhenTheGatewayIsKilled) {
  constexpr int kClients = 16;
  constexpr int kRounds = 3;
  constexpr int kAcksBeforeKill = 1000;
  TempDir state;
  const auto args =
      gateway_args(state, {"--max-events-per-session", "1000000", "--max-active-sessions", "64"});
  // Per client: sequence id -> message of every acknowledged append, across all rounds.
  std::vector<std::map<std::int64_t, std::string>> acknowledged(kClients);
  std::vector<std::string> sessions(kClients);

  for (int round = 0; round < kRounds; ++round) {
    GatewayProcess gateway(args);
    HttpClient client(gateway.port());
    for (int c = 0; c < kClients; ++c) {
      // Running sessions survive the restart, so each round continues the same sessions.
      const std::string id = open_session(client, "crash-" + std::to_string(c));
      if (round > 0) {
        ASSERT_EQ(id, sessions[c]);
      }
      sessions[c] = id;
    }
    std::mutex mutex;
    std::condition_variable enough;
    int acks = 0;
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        for (int n = 0;; ++n) {
          const std::string message =
              "r" + std::to_string(round) + "-c" + std::to_string(c) + "-" + std::to_string(n);
          HttpResponse response;
          try {
            response = client.post(session_path(sessions[c], "/progress"),
                                   json_body({{"message", message}}));
          } catch (const std::exception&) {
            return;  // the gateway is gone
          }
          if (response.status != 200)
            return;
          const auto sequence_id = response.json().at("event").at("sequence_id").as_int64();
          std::lock_guard lock(mutex);
          acknowledged[c].emplace(sequence_id, message);
          if (++acks == kAcksBeforeKill)
            enough.notify_one();
        }
      });
    }
    {
      std::unique_lock lock(mutex);
      enough.wait(lock, [&] { return acks >= kAcksBeforeKill; });
    }
    EXPECT_EQ(gateway.crash(), 128 + SIGKILL);
    for (auto& thread : clients)
      thread.join();

    GatewayProcess restarted(args);
    HttpClient check(restarted.port());
    for (int c = 0; c < kClients; ++c) {
      const auto events = replayed_events(check, sessions[c]);
      std::set<std::string> seen;
      for (std::size_t i = 0; i < events.size(); ++i) {
        ASSERT_EQ(events[i].id, std::to_string(i + 1)) << "gap or disorder in client " << c;
        const auto message = std::string(json::parse(events[i].data).at("message").as_string());
        EXPECT_TRUE(seen.insert(message).second) << "repeated: " << message;
      }
      for (const auto& [sequence_id, message] : acknowledged[c]) {
        ASSERT_LE(sequence_id, static_cast<std::int64_t>(events.size()))
            << "acknowledged event " << sequence_id << " of client " << c << " was lost";
        EXPECT_EQ(json::parse(events[sequence_id - 1].data).at("message").as_string(), message);
      }
    }
  }
}

TEST(Durability, RefusesToStartOnACorruptDatabaseAndLeavesItAlone) {
  TempDir state;
  const std::string path = database_path(state);
  const std::string garbage(8192, 'x');
  std::ofstream(path, std::ios::binary) << garbage;
  const auto result = run_gateway_to_exit(gateway_args(state));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.stderr_text.find(path), std::string::npos) << result.stderr_text;
  EXPECT_NE(result.stderr_text.find("not a database"), std::string::npos) << result.stderr_text;
  EXPECT_EQ(read_file(path), garbage);
}

TEST(Durability, RefusesToStartOnAnEmptyDatabaseBesideItsWal) {
  TempDir state;
  const std::string path = database_path(state);
  {
    GatewayProcess gateway(gateway_args(state));
    HttpClient client(gateway.port());
    const std::string id = open_session(client, "w");
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(client.post(session_path(id, "/progress"), json_body({{"message", "kept"}})).status,
                200u);
    }
    EXPECT_EQ(gateway.stop(), 0);
  }
  // The database file is lost (truncated to zero), its WAL is still there.
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  std::ofstream(path + "-wal", std::ios::binary) << "history";
  const auto result = run_gateway_to_exit(gateway_args(state));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.stderr_text.find(path), std::string::npos) << result.stderr_text;
  EXPECT_NE(result.stderr_text.find("empty"), std::string::npos) << result.stderr_text;
  EXPECT_EQ(read_file(path + "-wal"), "history");
}

// The WAL lost its tail while the gateway was down (the disk dropped the last writes of a
// crashed machine, or the file was truncated): the gateway starts with the history up to the
// damage, and the session continues past the ids its sequence mark recorded instead of handing
// out 11 again for a different event.
TEST(Durability, ASessionContinuesPastItsSequenceMarkWhenTheWalLostItsTail) {
  TempDir state;
  const std::string path = database_path(state);
  const auto args = gateway_args(state);
  std::string id;
  {
    GatewayProcess gateway(args);
    HttpClient client(gateway.port());
    id = open_session(client, "w");
    for (int i = 0; i < 10; ++i) {
      ASSERT_EQ(client.post(session_path(id, "/progress"), json_body({{"message", "kept"}})).status,
                200u);
    }
    EXPECT_EQ(gateway.stop(), 0);  // events 1-10 are checkpointed into gateway.db
  }
  {
    GatewayProcess gateway(args);
    HttpClient client(gateway.port());
    for (int i = 0; i < 10; ++i) {
      ASSERT_EQ(client.post(session_path(id, "/progress"), json_body({{"message", "lost"}})).status,
                200u);
    }
    // The mark is written within a second of the commits; wait for it, then crash.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (read_file(path + ".seqmark").find("\n20 " + id + "\n") == std::string::npos) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << read_file(path + ".seqmark");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(gateway.crash(), 128 + SIGKILL);
  }
  ASSERT_GT(std::filesystem::file_size(path + "-wal"), 0u);
  std::filesystem::resize_file(path + "-wal", 0);  // events 11-20 are gone

  GatewayProcess gateway(args);
  const std::string log = gateway.wait_for_stderr(
      [&](const std::string& text) { return text.find("continues at 21") != std::string::npos; });
  EXPECT_NE(log.find(id), std::string::npos) << log;
  HttpClient client(gateway.port());
  const auto response =
      client.post(session_path(id, "/progress"), json_body({{"message", "after the damage"}}));
  ASSERT_EQ(response.status, 200u);
  EXPECT_EQ(response.json().at("event").at("sequence_id").as_int64(), 21);
  const auto events = replayed_events(client, id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().id, "21");
  for (const auto& event : events) {
    EXPECT_NE(json::parse(event.data).at("message").as_string(), "lost");
  }
}

TEST(Durability, RefusesADatabaseFromANewerGatewayAndLeavesItAlone) {
  TempDir state;
  const std::string path = database_path(state);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE future(x); PRAGMA user_version = 999;", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const std::string before = read_file(path);
  const auto result = run_gateway_to_exit(gateway_args(state));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.stderr_text.find(path), std::string::npos) << result.stderr_text;
  EXPECT_NE(result.stderr_text.find("999"), std::string::npos) << result.stderr_text;
  EXPECT_EQ(read_file(path), before);
}

TEST(Durability, ASecondGatewayOnTheSameStateDirRefusesToStart) {
  TempDir state;
  GatewayProcess first(gateway_args(state));
  const std::string id = open_session(HttpClient(first.port()), "w");
  const auto second = run_gateway_to_exit(gateway_args(state));
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.stderr_text.find("in use"), std::string::npos) << second.stderr_text;
  // The first keeps serving.
  EXPECT_EQ(HttpClient(first.port()).get(session_path(id)).status, 200u);
}

}  // namespace
}  // namespace tau::test
