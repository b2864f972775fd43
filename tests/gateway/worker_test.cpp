// Worker mode against the real binary with real child processes (/bin/sh scripts written here).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "support/gateway_process.h"
#include "support/http_client.h"
#include "support/process_probe.h"

namespace tau::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// A script that greets, echoes each stdin line back and obeys a few commands.
const std::string kEchoAgent = R"SH(echo "hello $TAU_WORKSPACE_ID $TAU_EXTERNAL_SESSION_ID $(pwd)"
echo "args:$1|$2"
echo "env:$DEMO_KEY"
echo "to stderr" >&2
while IFS= read -r line; do
  case "$line" in
    exit0) exit 0 ;;
    exit3) exit 3 ;;
    die) kill -9 $$ ;;
  esac
  echo "got:$line"
done
)SH";

class WorkerGateway {
 public:
  explicit WorkerGateway(const std::string& script_body, std::vector<std::string> extra = {},
                         std::map<std::string, std::string> environment = {}) {
    std::vector<std::string> args = {
        "--auth-mode",      "localhost-dev",    "--rate-limit-max-requests",
        "100000000",        "--worker-command", write_script(scripts, "agent.sh", script_body),
        "--workspace-root", workspaces.path()};
    args.insert(args.end(), extra.begin(), extra.end());
    gateway = std::make_unique<GatewayProcess>(args, environment);
    client = std::make_unique<HttpClient>(gateway->port());
  }

  std::string open(const std::string& workspace = "ws") { return open_session(*client, workspace); }

  json::value worker_status() { return status_runtime(*client).at("worker"); }

  // The session's retained events, oldest first.
  std::vector<json::value> events(const std::string& id) {
    std::vector<json::value> result;
    for (const auto& message : parse_sse(client->get(session_path(id, "/stream")).body)) {
      if (message.event == "external_coding_agent.progress")
        result.push_back(json::parse(message.data));
    }
    return result;
  }

  // Waits (polling the replay, as an operator would) for an event of `type`.
  json::value wait_for_event(const std::string& id, const std::string& type,
                             std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      for (const auto& event : events(id)) {
        if (event.at("event_type").as_string() == type)
          return event;
      }
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "no " << type << " event";
    return nullptr;
  }

  std::string status_of(const std::string& id) {
    return std::string(client->get(session_path(id)).json().at("session").at("status").as_string());
  }

  TempDir scripts;
  TempDir workspaces;
  std::unique_ptr<GatewayProcess> gateway;
  std::unique_ptr<HttpClient> client;
};  // namespace

// Follows a session to its end and returns (type, message) of every event it delivered.
std::vector<std::pair<std::string, std::string>> follow_to_end(std::uint16_t port,
                                                               const std::string& id,
                                                               std::string* final_status) {
  SseStream stream(port, session_path(id, "/stream?follow=true"));
  std::vector<std::pair<std::string, std::string>> events;
  bool first_snapshot = true;
  while (auto message = stream.next_message()) {
    if (message->event == "external_coding_agent.progress") {
      const auto event = json::parse(message->data);
      events.emplace_back(event.at("event_type").as_string(), event.at("message").as_string());
    } else if (message->event == "external_coding_agent.snapshot") {
      if (!first_snapshot && final_status != nullptr) {
        *final_status = json::parse(message->data).at("session").at("status").as_string();
      }
      first_snapshot = false;
    }
  }
  return events;
}

TEST(Workers, OutputBecomesEventsAndFollowUpsReachStdinInOrder) {
  WorkerGateway w(kEchoAgent, {"--worker-arg", "two words", "--worker-arg", "$HOME", "--worker-env",
                               "DEMO_KEY=demo-secret-value"});
  const std::string id = w.open("repo.one");
  for (const std::string message : {"first", "second"}) {
    ASSERT_EQ(
        w.client->post(session_path(id, "/followups"), json_body({{"message", message}})).status,
        200u);
  }
  ASSERT_EQ(
      w.client->post(session_path(id, "/followups"), json_body({{"message", "exit0"}})).status,
      200u);
  std::string final_status;
  const auto events = follow_to_end(w.gateway->port(), id, &final_status);
  EXPECT_EQ(final_status, "completed");

  // Each stream keeps its own order; lines of stdout and stderr may interleave either way.
  std::vector<std::pair<std::string, std::string>> stdout_and_exit;
  std::vector<std::string> stderr_lines;
  for (const auto& [type, message] : events) {
    if (type == "subprocess.stderr")
      stderr_lines.push_back(message);
    if (type == "subprocess.stdout" || type == "subprocess.exit") {
      stdout_and_exit.emplace_back(type, message);
    }
  }
  const std::string directory =
      std::filesystem::canonical(w.workspaces.path()).string() + "/repo.one";
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"subprocess.stdout", "hello repo.one " + id + " " + directory},
      {"subprocess.stdout", "args:two words|$HOME"},
      {"subprocess.stdout", "env:demo-secret-value"},
      {"subprocess.stdout", "got:first"},
      {"subprocess.stdout", "got:second"},
      {"subprocess.exit", "exit code 0"},
  };
  EXPECT_EQ(stdout_and_exit, expected);
  EXPECT_EQ(stderr_lines, std::vector<std::string>{"to stderr"});
  EXPECT_TRUE(std::filesystem::is_directory(directory));

  // The worker leaves the running count just after its session's end is recorded.
  json::value status = w.worker_status();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (status.at("running").as_int64() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    status = w.worker_status();
  }
  EXPECT_EQ(status.at("args"), json::parse(R"(["two words","$HOME"])"));
  EXPECT_EQ(status.at("running").as_int64(), 0);
  EXPECT_EQ(status.at("exited").as_int64(), 1);
  EXPECT_EQ(w.gateway->stderr_text().find("demo-secret-value"), std::string::npos);
  EXPECT_EQ(w.client->get("/gateway/status").body.find("demo-secret-value"), std::string::npos);
}

TEST(Workers, ExitCodesAndSignalsDecideTheFinalStatus) {
  WorkerGateway w(kEchoAgent);
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"exit0", "completed", "exit code 0"},
      {"exit3", "failed", "exit code 3"},
      {"die", "failed", "killed by signal 9"},
  };
  for (const auto& [command, status, exit_message] : cases) {
    const std::string id = w.open("ws-" + command);
    ASSERT_EQ(
        w.client->post(session_path(id, "/followups"), json_body({{"message", command}})).status,
        200u);
    std::string final_status;
    const auto events = follow_to_end(w.gateway->port(), id, &final_status);
    EXPECT_EQ(final_status, status) << command;
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().first, "subprocess.exit") << command;
    EXPECT_EQ(events.back().second.rfind(exit_message, 0), 0u) << events.back().second;
  }
}

TEST(Workers, CloseAndReapStopAWorkerThatIgnoresSigterm) {
  WorkerGateway w("trap '' TERM\necho ready\nexec sleep 1000\n", {"--worker-kill-grace-ms", "300"});
  for (const std::string how : {"close", "reap"}) {
    const std::string id = w.open("stubborn-" + how);
    w.wait_for_event(id, "subprocess.stdout");
    const auto started = std::chrono::steady_clock::now();
    if (how == "close") {
      ASSERT_EQ(w.client->post(session_path(id, "/close"), "").status, 200u);
    } else {
      ASSERT_EQ(w.client
                    ->post("/gateway/external-coding-agent/reap",
                           json_body({{"now_unix_ms", std::int64_t{1} << 50}}))
                    .json()
                    .at("reaped_count")
                    .as_int64(),
                1);
    }
    const auto exit = w.wait_for_event(id, "subprocess.exit");
    const auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(exit.at("message").as_string().rfind("killed by signal 9", 0), 0u) << exit;
    // SIGKILL only once the grace has passed; how soon after it is not judged (wait_for_event's
    // deadline only bounds a hang).
    EXPECT_GE(elapsed, 300ms) << how;
    EXPECT_EQ(w.status_of(id), how == "close" ? "closed" : "timed_out");
  }
}

TEST(Workers, ACommandThatCannotStartIs502AndLeavesNoSession) {
  TempDir workspaces;
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--worker-command",
                          "/nonexistent/agent-binary", "--workspace-root", workspaces.path()});
  HttpClient client(gateway.port());
  const auto response = client.post(kSessions, json_body({{"workspace_id", "ws"}}));
  EXPECT_EQ(response.status, 502u);
  EXPECT_EQ(response.error_code(), "gateway_runtime_error");
  const std::string message(response.json().at("error").at("message").as_string());
  EXPECT_NE(message.find("/nonexistent/agent-binary"), std::string::npos) << message;
  EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  const auto runtime = status_runtime(client);
  EXPECT_EQ(runtime.at("active_sessions").as_int64(), 0);
  EXPECT_EQ(runtime.at("worker").at("failed_to_start").as_int64(), 1);
}

TEST(Workers, StdinClosedByTheWorkerFailsTheFollowUpAndTheSession) {
  WorkerGateway w("exec 0<&-\necho closed\nexec sleep 1000\n", {"--worker-kill-grace-ms", "100"});
  const std::string id = w.open();
  w.wait_for_event(id, "subprocess.stdout");
  const auto response =
      w.client->post(session_path(id, "/followups"), json_body({{"message", "anyone there?"}}));
  EXPECT_EQ(response.status, 502u);
  EXPECT_EQ(response.error_code(), "gateway_runtime_error");
  EXPECT_EQ(w.status_of(id), "failed");
  EXPECT_FALSE(w.wait_for_event(id, "subprocess.stdin_error").is_null());
  w.wait_for_event(id, "subprocess.exit");  // the failed session's worker is stopped
}

TEST(Workers, AFloodOfOutputArrivesCompleteUpToRetentionWhileTheApiResponds) {
  WorkerGateway w("seq 1 100000\n", {"--max-events-per-session", "1000"});
  const std::string id = w.open();
  EXPECT_EQ(w.client->get("/gateway/status").status, 200u);
  // A follower cannot keep up with this flood within the retention cap (it is cut off to
  // resume), so the replay is polled instead; it shows events once they are durable, which
  // can be well after the session's status changed. The deadline only bounds a hang: an
  // instrumented build on a loaded machine needs tens of seconds for the 100,000 lines.
  w.wait_for_event(id, "subprocess.exit", 100s);
  EXPECT_EQ(w.status_of(id), "completed");
  const auto events = w.events(id);
  ASSERT_EQ(events.size(), 1000u);
  EXPECT_EQ(events.back().at("event_type").as_string(), "subprocess.exit");
  EXPECT_EQ(events.back().at("sequence_id").as_int64(), 100001);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].at("message").as_string(), std::to_string(99002 + i));
  }
}

// Whether `target` is what the store's checkpointer holds open for a moment while it rewrites
// the sequence mark: the temporary file, or the state dir it fsyncs after the rename.
bool is_sequence_mark_write(const std::string& target) {
  const std::string temporary = ".seqmark.tmp";
  if (target.size() >= temporary.size() &&
      target.compare(target.size() - temporary.size(), temporary.size(), temporary) == 0) {
    return true;
  }
  std::error_code error;
  return std::filesystem::exists(target + "/gateway.db.seqmark", error);
}

// The process's open descriptors other than sockets: HTTP connections come and go with the
// test's own requests, while a leak from workers would be pipes or pidfds.
std::size_t open_non_socket_fds(pid_t pid) {
  std::size_t count = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error).string();
    if (!error && target.rfind("socket:", 0) != 0 && !is_sequence_mark_write(target))
      ++count;
  }
  return count;
}

std::vector<pid_t> zombie_children(pid_t parent) {
  std::vector<pid_t> zombies;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line))
      continue;
    // pid (comm) state ppid ...; comm may hold spaces, so parse after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state == 'Z')
      zombies.push_back(std::stoi(entry.path().filename()));
  }
  return zombies;
}

TEST(Workers, ManyOpenCloseCyclesLeaveNoZombiesAndNoLeakedDescriptors) {
  WorkerGateway w("exec sleep 1000\n", {"--worker-kill-grace-ms", "2000"});
  // One cycle first, so lazily opened descriptors (e.g. the epoll set) are counted at the start.
  ASSERT_EQ(w.client->post(session_path(w.open(), "/close"), "").status, 200u);
  auto wait_until_no_worker_runs = [&] {
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (w.worker_status().at("running").as_int64() != 0 &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(w.worker_status().at("running").as_int64(), 0);
  };
  wait_until_no_worker_runs();
  const std::size_t fds_at_start = open_non_socket_fds(w.gateway->pid());
  for (int i = 0; i < 500; ++i) {
    const std::string id = w.open();
    ASSERT_EQ(w.client->post(session_path(id, "/close"), "").status, 200u);
  }
  wait_until_no_worker_runs();
  EXPECT_EQ(w.worker_status().at("exited").as_int64(), 501);
  EXPECT_EQ(open_non_socket_fds(w.gateway->pid()), fds_at_start);
  EXPECT_TRUE(zombie_children(w.gateway->pid()).empty());
}

TEST(Workers, WorkspaceIdsMustNameADirectoryInsideTheRoot) {
  WorkerGateway w(kEchoAgent);
  for (const std::string& bad :
       std::vector<std::string>{"..", ".", "a/b", "", "  ", "a b", "x\\y", std::string(129, 'a')}) {
    const auto response = w.client->post(kSessions, json_body({{"workspace_id", bad}}));
    EXPECT_EQ(response.status, 400u) << bad;
    EXPECT_EQ(response.error_code(), "invalid_workspace_id") << bad;
  }
  EXPECT_EQ(w.client->post(kSessions, json_body({{"workspace_id", std::string(128, 'a')}})).status,
            200u);
  EXPECT_EQ(w.client->post(kSessions, json_body({{"workspace_id", "Repo-1.2_x"}})).status, 200u);
}

TEST(Workers, ASymlinkInTheWorkspaceRootIsRefusedAndNothingRunsWhereItPoints) {
  const std::string agent = "echo started > started.txt\nwhile read -r line; do :; done\n";
  WorkerGateway w(agent);
  TempDir elsewhere;
  std::filesystem::create_symlink(elsewhere.path(), w.workspaces.path() + "/evil");
  std::filesystem::create_symlink(elsewhere.path() + "/missing", w.workspaces.path() + "/dangling");
  for (const std::string workspace : {"evil", "dangling"}) {
    const auto response = w.client->post(kSessions, json_body({{"workspace_id", workspace}}));
    EXPECT_EQ(response.status, 400u) << workspace;
    EXPECT_EQ(response.error_code(), "invalid_workspace_id") << workspace;
  }
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere.path()));
  EXPECT_EQ(w.client->get(kSessions).json().at("sessions").as_array().size(), 0u);
  // A real directory beside them works.
  const std::string id = w.open("real");
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!std::filesystem::exists(w.workspaces.path() + "/real/started.txt") &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(std::filesystem::exists(w.workspaces.path() + "/real/started.txt")) << id;
}

TEST(Workers, EnvClearAndResourceLimitsApplyToTheWorker) {
  const std::string agent = "echo \"nofile:$(ulimit -n)\"\nexec /usr/bin/env\n";
  WorkerGateway w(agent,
                  {"--worker-env-clear", "--worker-env", "FROM_WORKER_ENV=given", "--worker-rlimit",
                   "nofile=77", "--worker-rlimit", "as=4294967296"},
                  {{"TAU_TEST_PLAIN", "plain"}, {"LANG", "C.UTF-8"}});
  const std::string id = w.open();
  w.wait_for_event(id, "subprocess.exit");
  std::map<std::string, std::string> lines;
  for (const auto& event : w.events(id)) {
    if (event.at("event_type").as_string() != "subprocess.stdout")
      continue;
    const std::string message(event.at("message").as_string());
    const auto separator = message.find_first_of("=:");
    lines[message.substr(0, separator)] = message.substr(separator + 1);
  }
  EXPECT_EQ(lines["nofile"], "77");
  EXPECT_EQ(lines.count("TAU_TEST_PLAIN"), 0u);  // the gateway's environment is not passed on
  EXPECT_EQ(lines["LANG"], "C.UTF-8");           // ...but for PATH, HOME and LANG
  EXPECT_FALSE(lines["PATH"].empty());
  EXPECT_EQ(lines["FROM_WORKER_ENV"], "given");
  EXPECT_EQ(lines["TAU_WORKSPACE_ID"], "ws");
}

TEST(Workers, ShutdownStopsWorkersBeforeTheGatewayExits) {
  WorkerGateway w("trap '' TERM\necho \"pid $$\"\nexec sleep 1000\n",
                  {"--worker-kill-grace-ms", "200"});
  const std::string id = w.open();
  const auto greeting = w.wait_for_event(id, "subprocess.stdout");
  const pid_t worker_pid = std::stoi(std::string(greeting.at("message").as_string()).substr(4));
  EXPECT_EQ(w.gateway->stop(), 0);
  EXPECT_NE(::kill(worker_pid, 0), 0) << "the worker outlived the gateway";
}

// --- issue 17: what a worker inherits, and what outlives it ------------------------------------

// Waits until `pid` runs `command` (`running`) or no longer does; the deadline only bounds a hang.
bool wait_for_command(pid_t pid, const std::string& command, bool running) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while ((running_command(pid) == command) != running) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(10ms);  // polling a process the test cannot wait for
  }
  return true;
}

// A worker that double-forks a daemon into a session of its own (a number no other process here
// sleeps, so a reused pid is not mistaken for it), reports both pids, and stays.
const std::string kDaemonCommand = "sleep 617";
const std::string kDaemonAgent = "echo \"worker:$$\"\nsh -c 'setsid " + kDaemonCommand +
                                 " </dev/null >/dev/null 2>&1 & echo \"daemon:$!\"'\n"
                                 "exec sleep 1000\n";

struct WorkerTree {
  pid_t worker = -1;
  pid_t daemon = -1;
};

// The pids kDaemonAgent reports, once its daemon runs.
WorkerTree wait_for_tree(WorkerGateway& w, const std::string& id) {
  WorkerTree tree;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (tree.daemon < 0 && std::chrono::steady_clock::now() < until) {
    for (const auto& event : w.events(id)) {
      const std::string message(event.at("message").as_string());
      if (message.rfind("worker:", 0) == 0)
        tree.worker = std::stoi(message.substr(7));
      if (message.rfind("daemon:", 0) == 0)
        tree.daemon = std::stoi(message.substr(7));
    }
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GT(tree.worker, 0);
  EXPECT_GT(tree.daemon, 0);
  EXPECT_TRUE(tree.daemon > 0 && wait_for_command(tree.daemon, kDaemonCommand, true));
  return tree;
}

// Both must be gone; whatever survived is stopped here so that it does not outlive the test.
void expect_tree_gone(const WorkerTree& tree) {
  const bool daemon_gone = wait_for_command(tree.daemon, kDaemonCommand, false);
  EXPECT_TRUE(daemon_gone) << "the worker's daemon outlived it";
  const bool worker_gone = wait_for_command(tree.worker, "sleep 1000", false);
  EXPECT_TRUE(worker_gone) << "the worker outlived its session";
  if (!daemon_gone)
    ::kill(tree.daemon, SIGKILL);
  if (!worker_gone)
    ::kill(tree.worker, SIGKILL);
}

TEST(Workers, ClosingTheSessionStopsTheDaemonsItsWorkerStarted) {
  WorkerGateway w(kDaemonAgent, {"--worker-kill-grace-ms", "10000"});
  const std::string id = w.open();
  const WorkerTree tree = wait_for_tree(w, id);
  ASSERT_EQ(w.client->post(session_path(id, "/close"), "").status, 200u);
  const auto exit = w.wait_for_event(id, "subprocess.exit");
  // The worker's own end, as before: SIGTERM, within the grace.
  EXPECT_EQ(exit.at("message").as_string().rfind("killed by signal 15", 0), 0u) << exit;
  expect_tree_gone(tree);
}

TEST(Workers, AGatewayKilledWithSigkillTakesItsWorkersDaemonsWithIt) {
  WorkerGateway w(kDaemonAgent);
  const WorkerTree tree = wait_for_tree(w, w.open());
  w.gateway->crash();
  expect_tree_gone(tree);
}

TEST(Workers, WorkersSeeNeitherTheGatewaysSettingsNorItsSecrets) {
  TempDir workspaces;
  const std::string token = "token-not-for-agents";
  GatewayProcess gateway({"--worker-command", "/usr/bin/env", "--workspace-root", workspaces.path(),
                          "--worker-env", "FROM_WORKER_ENV=given"},
                         {{"TAU_GATEWAY_AUTH_TOKEN", token},
                          {"TAU_GATEWAY_LOG_LEVEL", "info"},
                          {"TAU_TEST_COPY_OF_TOKEN", token},
                          {"TAU_TEST_PLAIN", "plain"}});
  HttpClient client(gateway.port(), token);
  const std::string id = open_session(client, "ws");
  // The replay, polled until it holds the worker's exit.
  std::vector<json::value> events;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    events.clear();
    for (const auto& message : parse_sse(client.get(session_path(id, "/stream")).body)) {
      if (message.event == "external_coding_agent.progress")
        events.push_back(json::parse(message.data));
    }
    if (!events.empty() && events.back().at("event_type").as_string() == "subprocess.exit")
      break;
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().at("message").as_string(), "exit code 0");
  std::map<std::string, std::string> environment;
  for (const auto& event : events) {
    if (event.at("event_type").as_string() != "subprocess.stdout")
      continue;
    const std::string message(event.at("message").as_string());
    const auto equals = message.find('=');
    environment[message.substr(0, equals)] = message.substr(equals + 1);
  }
  for (const auto& [name, value] : environment) {
    EXPECT_NE(name.rfind("TAU_GATEWAY_", 0), 0u) << name;
    EXPECT_NE(value, token) << name;
  }
  EXPECT_EQ(environment["TAU_TEST_PLAIN"], "plain");
  EXPECT_EQ(environment["FROM_WORKER_ENV"], "given");
  EXPECT_EQ(environment["TAU_EXTERNAL_SESSION_ID"], id);
}

}  // namespace
}  // namespace tau::test
