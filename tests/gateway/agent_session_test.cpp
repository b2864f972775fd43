// Agent sessions against the real binary with scripted agents (tests/support/fake_agents, under
// Node): a prompt at open, follow-ups as turns in FIFO order, drain, cancel, permissions, close,
// and agents that break the protocol.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const std::string kFakeAgents = std::string(TAU_SOURCE_DIR) + "/tests/support/fake_agents/";

struct ProfileLines {
  std::string name = "fake";
  std::string protocol = "acp";
  std::string script = "fake_acp_agent.mjs";
  std::string extra;  // more lines of the profile's table
  std::string command = TAU_NODE_BINARY;
};

// A gateway whose config file defines the given profiles, with workspaces in a dir of its own.
class AgentGateway {
 public:
  AgentGateway() : AgentGateway(std::vector<ProfileLines>{ProfileLines{}}) {}
  explicit AgentGateway(const std::vector<ProfileLines>& profiles,
                        const std::string& default_agent = "fake") {
    std::ofstream file(dir.path() + "/gateway.toml");
    file << "workspace-root = \"" << workspaces() << "\"\n";
    file << "rate-limit-max-requests = 100000000\n";
    if (!default_agent.empty())
      file << "default_agent = \"" << default_agent << "\"\n";
    for (const auto& profile : profiles) {
      file << "[agents." << profile.name << "]\nprotocol = \"" << profile.protocol
           << "\"\ncommand = \"" << profile.command << "\"\nargs = [\"" << kFakeAgents
           << profile.script << "\"]\n"
           << profile.extra << "\n";
    }
    file.close();
    start();
  }

  // Stops the gateway (SIGTERM) and starts it again on the same state and config.
  void restart() {
    client.reset();
    gateway.reset();
    start();
  }

  std::string workspaces() const { return dir.path() + "/ws"; }

  void start() {
    gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{
        "--auth-mode", "localhost-dev", "--config", dir.path() + "/gateway.toml", "--state-dir",
        dir.path() + "/state"});
    client = std::make_unique<HttpClient>(gateway->port());
  }

  // Opens a session with `fields` (workspace_id defaults to "ws"); returns the answer's session.
  json::object open(json::object fields, unsigned expected_status = 200) {
    if (!fields.contains("workspace_id"))
      fields["workspace_id"] = "ws";
    const auto response = client->post(kSessions, json_body(fields));
    EXPECT_EQ(response.status, expected_status) << response.body;
    const json::value body = json::parse(response.body);
    return expected_status == 200 ? body.at("session").as_object() : body.as_object();
  }

  json::object post(const std::string& id, const std::string& suffix, json::object fields,
                    unsigned expected_status = 200) {
    const auto response = client->post(session_path(id, suffix), json_body(fields));
    EXPECT_EQ(response.status, expected_status) << suffix << ": " << response.body;
    return json::parse(response.body).as_object();
  }

  json::object detail(const std::string& id) {
    return json::parse(client->get(session_path(id)).body).at("session").as_object();
  }

  std::vector<json::object> events(const std::string& id) {
    std::vector<json::object> result;
    for (const auto& message : replayed_events(*client, id))
      result.push_back(json::parse(message.data).as_object());
    return result;
  }

  std::vector<json::object> events_of(const std::string& id, std::string_view type) {
    std::vector<json::object> result;
    for (auto& event : events(id)) {
      if (event.at("event_type").as_string() == type)
        result.push_back(std::move(event));
    }
    return result;
  }

  // Waits until the session's log satisfies `done` (the deadline only bounds a hang).
  std::vector<json::object> wait_for(
      const std::string& id, const std::function<bool(const std::vector<json::object>&)>& done,
      const std::string& what) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    std::vector<json::object> log;
    while (std::chrono::steady_clock::now() < until) {
      log = events(id);
      if (done(log))
        return log;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "gave up waiting for " << what;
    return log;
  }

  // Waits for the `count`-th event of `type`.
  json::object wait_for_event(const std::string& id, std::string_view type, std::size_t count = 1) {
    auto log = wait_for(
        id,
        [&](const auto& events) {
          std::size_t seen = 0;
          for (const auto& event : events)
            seen += event.at("event_type").as_string() == type ? 1 : 0;
          return seen >= count;
        },
        std::string(type));
    std::size_t seen = 0;
    for (auto& event : log) {
      if (event.at("event_type").as_string() == type && ++seen == count)
        return event;
    }
    return {};
  }

  json::object wait_for_status(const std::string& id, std::string_view status) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      json::object session = detail(id);
      if (session.at("status").as_string() == status)
        return session;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "session never became " << status;
    return {};
  }

  TempDir dir;
  std::unique_ptr<GatewayProcess> gateway;
  std::unique_ptr<HttpClient> client;
};

std::string text_of(const json::object& event) {
  return std::string(event.at("data").at("text").as_string());
}

std::vector<std::string> prompts_of(AgentGateway& agents, const std::string& id) {
  std::vector<std::string> prompts;
  for (const auto& event : agents.events_of(id, "agent.turn_started"))
    prompts.emplace_back(event.at("data").at("prompt").as_string());
  return prompts;
}

TEST(AgentSessions, APromptAtOpenIsTheFirstTurnAndTheSnapshotShowsTheAgent) {
  AgentGateway agents;
  const json::object opened = agents.open({{"prompt", "hello"}});
  const std::string id(opened.at("session_id").as_string());
  const json::object& agent = opened.at("agent").as_object();
  EXPECT_EQ(agent.at("name"), "fake");
  EXPECT_EQ(agent.at("protocol"), "acp");
  EXPECT_EQ(agent.at("turns_completed"), 0);

  agents.wait_for_event(id, "agent.turn_ended");
  std::string said;
  for (const auto& event : agents.events_of(id, "agent.message")) {
    EXPECT_EQ(event.at("data").at("turn"), 1);
    said += text_of(event);
  }
  EXPECT_EQ(said, "Hello, world");
  const auto ended = agents.events_of(id, "agent.turn_ended");
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].at("data").at("stop_reason"), "end_turn");
  EXPECT_EQ(prompts_of(agents, id), std::vector<std::string>{"hello"});

  const json::object session = agents.detail(id);
  EXPECT_EQ(session.at("queued_followups"), 0);
  EXPECT_EQ(session.at("agent").at("state"), "idle");
  EXPECT_EQ(session.at("agent").at("turns_completed"), 1);
  EXPECT_EQ(session.at("agent").at("last_stop_reason"), "end_turn");
  // The stream's snapshot frame carries the agent too.
  const auto stream = parse_sse(agents.client->get(session_path(id, "/stream")).body);
  ASSERT_FALSE(stream.empty());
  EXPECT_EQ(json::parse(stream[0].data).at("session").at("agent").at("name"), "fake");
  // The agent runs in the workspace's directory.
  EXPECT_TRUE(std::filesystem::is_directory(agents.workspaces() + "/ws"));
}

TEST(AgentSessions, BadOpeningsAreRefusedAndLeaveNoSession) {
  AgentGateway agents;
  const json::object unknown = agents.open({{"agent", "nope"}}, 400);
  EXPECT_EQ(unknown.at("error").at("code"), "unknown_agent");
  const json::object empty = agents.open({{"prompt", "  "}}, 400);
  EXPECT_EQ(empty.at("error").at("code"), "invalid_message");
  const json::object wrong = agents.open({{"agent", 3}}, 400);
  EXPECT_EQ(wrong.at("error").at("code"), "malformed_json");
  const auto list = json::parse(agents.client->get(kSessions).body);
  EXPECT_TRUE(list.at("sessions").as_array().empty());
}

TEST(AgentSessions, WithoutAnAgentASessionIsPlainAndHasNoAgentControls) {
  // Two profiles and no default_agent: a session that names none runs no agent.
  AgentGateway agents({{}, {.name = "other"}}, "");
  const json::object plain = agents.open({});
  EXPECT_TRUE(plain.at("agent").is_null());
  const std::string id(plain.at("session_id").as_string());
  EXPECT_EQ(agents.post(id, "/cancel", {}, 409).at("error").at("code"), "not_an_agent_session");
  EXPECT_EQ(agents.client->get(session_path(id, "/permissions")).status, 409u);
  // Follow-ups queue as always and are never delivered anywhere.
  agents.post(id, "/followups", {{"message", "stays queued"}});
  EXPECT_EQ(agents.detail(id).at("queued_followups"), 1);
  EXPECT_EQ(agents.post("eca_00000000000000000000000000000000", "/cancel", {}, 404)
                .at("error")
                .at("code"),
            "external_coding_agent_session_not_found");
}

TEST(AgentSessions, FollowUpsQueuedDuringATurnBecomeTheNextTurnsInOrder) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "slow"}}).at("session_id").as_string());
  agents.wait_for_event(id, "agent.message");  // the slow turn runs
  agents.post(id, "/followups", {{"message", "echo one"}});
  const json::object second = agents.post(id, "/followups", {{"message", "echo two"}});
  // Both wait: nothing is delivered while a turn runs.
  EXPECT_EQ(second.at("session").at("queued_followups"), 2);
  EXPECT_EQ(second.at("session").at("agent").at("state"), "prompting");

  const json::object cancelled = agents.post(id, "/cancel", {});
  EXPECT_EQ(cancelled.at("cancelled"), true);
  agents.wait_for_event(id, "agent.turn_ended", 3);
  EXPECT_EQ(prompts_of(agents, id), (std::vector<std::string>{"slow", "echo one", "echo two"}));
  const auto ended = agents.events_of(id, "agent.turn_ended");
  EXPECT_EQ(ended[0].at("data").at("stop_reason"), "cancelled");
  std::vector<std::string> said;
  for (const auto& event : agents.events_of(id, "agent.message"))
    said.push_back(text_of(event));
  EXPECT_EQ(said, (std::vector<std::string>{"working", "one", "two"}));
  EXPECT_EQ(agents.detail(id).at("queued_followups"), 0);
  // No turn runs now.
  EXPECT_EQ(agents.post(id, "/cancel", {}).at("cancelled"), false);
}

TEST(AgentSessions, DrainWithdrawsTheUndeliveredFollowUpsAndNothingIsDeliveredTwice) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "slow"}}).at("session_id").as_string());
  agents.wait_for_event(id, "agent.message");
  agents.post(id, "/followups", {{"message", "echo a"}});
  agents.post(id, "/followups", {{"message", "echo b"}});
  const json::object drained = agents.post(id, "/followups/drain", {});
  EXPECT_EQ(drained.at("followups"), (json::array{"echo a", "echo b"}));
  agents.post(id, "/cancel", {});
  agents.wait_for_event(id, "agent.turn_ended");
  agents.post(id, "/followups", {{"message", "echo c"}});
  agents.wait_for_event(id, "agent.turn_ended", 2);
  EXPECT_EQ(prompts_of(agents, id), (std::vector<std::string>{"slow", "echo c"}));
}

TEST(AgentSessions, APermissionAnsweredThroughTheApiLetsTheToolRun) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "write a.txt"}}).at("session_id").as_string());
  const json::object requested = agents.wait_for_event(id, "agent.permission_requested");
  const std::string request_id(requested.at("data").at("request_id").as_string());
  EXPECT_EQ(requested.at("data").at("options").as_array().size(), 2u);

  const json::value listed = json::parse(agents.client->get(session_path(id, "/permissions")).body);
  ASSERT_EQ(listed.at("permissions").as_array().size(), 1u);
  EXPECT_EQ(listed.at("permissions").at(0).at("request_id").as_string(), request_id);
  EXPECT_EQ(listed.at("session").at("agent").at("state"), "awaiting_permission");

  const std::string answer = "/permissions/" + request_id;
  EXPECT_EQ(agents.post(id, answer, {{"option_id", "maybe"}}, 400).at("error").at("code"),
            "invalid_option");
  EXPECT_EQ(
      agents.post(id, "/permissions/nope", {{"option_id", "allow"}}, 404).at("error").at("code"),
      "permission_request_not_found");
  EXPECT_EQ(agents.post(id, answer, {}, 400).at("error").at("code"), "malformed_json");
  const json::object answered = agents.post(id, answer, {{"option_id", "allow"}});
  EXPECT_EQ(answered.at("outcome"), "selected");
  EXPECT_EQ(agents.post(id, answer, {{"option_id", "allow"}}, 409).at("error").at("code"),
            "permission_request_resolved");

  agents.wait_for_event(id, "agent.turn_ended");
  EXPECT_TRUE(std::filesystem::exists(agents.workspaces() + "/ws/a.txt"));
  const auto resolved = agents.events_of(id, "agent.permission_resolved");
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].at("data").at("outcome"), "selected");
  EXPECT_EQ(resolved[0].at("data").at("by"), "api");
  const auto updates = agents.events_of(id, "agent.tool_call_update");
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].at("data").at("status"), "completed");
}

// The threat: a hostile page in the user's browser approving a tool's permission would run
// code on the user's machine. Its simple cross-site requests are refused before anything is
// answered, and the request stays pending for the real client.
TEST(AgentSessions, ACrossSitePageCanNeitherAnswerAPermissionNorCancelTheTurn) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "write pwned.txt"}}).at("session_id").as_string());
  const json::object requested = agents.wait_for_event(id, "agent.permission_requested");
  const std::string answer = session_path(
      id, "/permissions/" + std::string(requested.at("data").at("request_id").as_string()));
  const std::string allow = json_body({{"option_id", "allow"}});
  const auto cross_site = agents.client->post(
      answer, allow, {{"Origin", "http://evil.example"}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(cross_site.status, 403u) << cross_site.body;
  EXPECT_EQ(cross_site.error_code(), "origin_not_allowed");
  // Without an Origin, a form's body types are still not JSON.
  EXPECT_EQ(agents.client->post(answer, allow, {{"Content-Type", "text/plain"}}).status, 415u);
  const auto cancel =
      agents.client->post(session_path(id, "/cancel"), "", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(cancel.error_code(), "origin_not_allowed");

  const json::value listed = json::parse(agents.client->get(session_path(id, "/permissions")).body);
  EXPECT_EQ(listed.at("permissions").as_array().size(), 1u);
  EXPECT_EQ(listed.at("session").at("agent").at("state"), "awaiting_permission");
  EXPECT_TRUE(agents.events_of(id, "agent.permission_resolved").empty());
  EXPECT_FALSE(std::filesystem::exists(agents.workspaces() + "/ws/pwned.txt"));
  // The real client still can.
  agents.post(id, "/permissions/" + std::string(requested.at("data").at("request_id").as_string()),
              {{"option_id", "reject"}});
  agents.wait_for_event(id, "agent.turn_ended");
  EXPECT_FALSE(std::filesystem::exists(agents.workspaces() + "/ws/pwned.txt"));
}

TEST(AgentSessions, ARejectedPermissionKeepsTheToolFromRunning) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "write b.txt"}}).at("session_id").as_string());
  const json::object requested = agents.wait_for_event(id, "agent.permission_requested");
  agents.post(id, "/permissions/" + std::string(requested.at("data").at("request_id").as_string()),
              {{"option_id", "reject"}});
  agents.wait_for_event(id, "agent.turn_ended");
  EXPECT_FALSE(std::filesystem::exists(agents.workspaces() + "/ws/b.txt"));
  EXPECT_EQ(agents.events_of(id, "agent.tool_call_update").at(0).at("data").at("status"), "failed");
}

TEST(AgentSessions, PoliciesAndTimeoutsAnswerWithoutTheClient) {
  AgentGateway agents({{.name = "allowing", .extra = "permission = \"allow\""},
                       {.name = "impatient", .extra = "permission_timeout_ms = 200"}},
                      "");
  const std::string allowed(
      agents.open({{"workspace_id", "p1"}, {"agent", "allowing"}, {"prompt", "write c.txt"}})
          .at("session_id")
          .as_string());
  const std::string timed(
      agents.open({{"workspace_id", "p2"}, {"agent", "impatient"}, {"prompt", "write d.txt"}})
          .at("session_id")
          .as_string());
  agents.wait_for_event(allowed, "agent.turn_ended");
  agents.wait_for_event(timed, "agent.turn_ended");
  EXPECT_EQ(agents.events_of(allowed, "agent.permission_resolved").at(0).at("data").at("by"),
            "policy");
  EXPECT_TRUE(std::filesystem::exists(agents.workspaces() + "/p1/c.txt"));
  const auto expired = agents.events_of(timed, "agent.permission_resolved").at(0).at("data");
  EXPECT_EQ(expired.at("outcome"), "timed_out");
  EXPECT_EQ(expired.at("by"), "timeout");
  EXPECT_FALSE(std::filesystem::exists(agents.workspaces() + "/p2/d.txt"));
}

TEST(AgentSessions, ClosingASessionCancelsItsPendingRequestAndStopsTheAgent) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "write e.txt"}}).at("session_id").as_string());
  agents.wait_for_event(id, "agent.permission_requested");
  agents.post(id, "/close", {});
  agents.wait_for_event(id, "subprocess.exit");
  const auto resolved = agents.events_of(id, "agent.permission_resolved");
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].at("data").at("outcome"), "cancelled");
  EXPECT_EQ(agents.detail(id).at("status"), "closed");
  EXPECT_EQ(agents.detail(id).at("agent").at("state"), "exited");
  EXPECT_FALSE(std::filesystem::exists(agents.workspaces() + "/ws/e.txt"));
}

TEST(AgentSessions, AnAgentThatBreaksTheProtocolIsReportedAndTheConversationGoesOn) {
  AgentGateway agents({{.extra = "env = { FAKE_LONG_LINE_BYTES = \"100000\" }"}});
  const std::string bad(agents.open({{"prompt", "garbage"}}).at("session_id").as_string());
  const std::string good(
      agents.open({{"workspace_id", "other"}, {"prompt", "hello"}}).at("session_id").as_string());
  agents.wait_for_event(bad, "agent.turn_ended");
  const auto errors = agents.events_of(bad, "agent.protocol_error");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].at("data").at("detail").as_string().find("not JSON"), std::string::npos);
  EXPECT_NE(errors[2].at("data").at("detail").as_string().find("100000 bytes dropped"),
            std::string::npos);
  // The agent's request of an unknown method got JSON-RPC's -32601.
  EXPECT_EQ(text_of(agents.events_of(bad, "agent.message").at(0)), "error -32601");
  EXPECT_EQ(agents.detail(bad).at("status"), "running");
  agents.wait_for_event(good, "agent.turn_ended");
  EXPECT_EQ(text_of(agents.events_of(good, "agent.message").at(0)), "Hello, world");
}

TEST(AgentSessions, AnAgentThatExitsMidTurnFailsItsSession) {
  AgentGateway agents;
  const std::string id(agents.open({{"prompt", "exit"}}).at("session_id").as_string());
  agents.wait_for_status(id, "failed");
  EXPECT_EQ(agents.events_of(id, "subprocess.exit").at(0).at("message"), "exit code 3");
  EXPECT_EQ(agents.detail(id).at("agent").at("state"), "exited");
}

TEST(AgentSessions, AnAgentThatNeverAnswersInitializeFailsItsSession) {
  AgentGateway agents(
      {{.extra = "startup_timeout_ms = 300\nenv = { FAKE_ACP_NO_INITIALIZE = \"1\" }"}});
  const std::string id(agents.open({{"prompt", "hello"}}).at("session_id").as_string());
  agents.wait_for_status(id, "failed");
  const auto errors = agents.events_of(id, "agent.protocol_error");
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].at("message").as_string().find("startup_timeout_ms"), std::string::npos);
  EXPECT_TRUE(agents.events_of(id, "agent.turn_started").empty());
}

TEST(AgentSessions, AnAgentThatCannotStartLeavesNoSessionAndOneThatDiesAtOnceFailsIt) {
  AgentGateway agents({{.name = "missing", .command = "/nonexistent/agent"},
                       {.name = "dying", .script = "no-such-script.mjs"}},
                      "");
  const json::object refused = agents.open({{"agent", "missing"}, {"prompt", "hello"}}, 502);
  EXPECT_EQ(refused.at("error").at("code"), "gateway_runtime_error");
  EXPECT_TRUE(json::parse(agents.client->get(kSessions).body).at("sessions").as_array().empty());
  // Node starts and exits at once: the session fails rather than waits.
  const std::string id(
      agents.open({{"agent", "dying"}, {"prompt", "hello"}}).at("session_id").as_string());
  agents.wait_for_status(id, "failed");
}

TEST(AgentSessions, ClaudeStreamJsonTurnsPermissionsAndInterrupts) {
  AgentGateway agents({{.name = "claude",
                        .protocol = "claude-stream-json",
                        .script = "fake_stream_json_agent.mjs"}},
                      "claude");
  const json::object opened = agents.open({{"prompt", "hello"}});
  EXPECT_EQ(opened.at("agent").at("protocol"), "claude-stream-json");
  const std::string id(opened.at("session_id").as_string());
  agents.wait_for_event(id, "agent.turn_ended");
  EXPECT_EQ(text_of(agents.events_of(id, "agent.message").at(0)), "Hello, world");
  EXPECT_EQ(
      agents.events_of(id, "agent.turn_ended").at(0).at("data").at("usage").at("output_tokens"), 5);

  agents.post(id, "/followups", {{"message", "write f.txt"}});
  const json::object requested = agents.wait_for_event(id, "agent.permission_requested");
  agents.post(id, "/permissions/" + std::string(requested.at("data").at("request_id").as_string()),
              {{"option_id", "allow"}});
  agents.wait_for_event(id, "agent.turn_ended", 2);
  EXPECT_TRUE(std::filesystem::exists(agents.workspaces() + "/ws/f.txt"));

  agents.post(id, "/followups", {{"message", "slow"}});
  agents.wait_for_event(id, "agent.message", 3);  // hello, wrote f.txt, working
  EXPECT_EQ(agents.post(id, "/cancel", {}).at("cancelled"), true);
  const json::object ended = agents.wait_for_event(id, "agent.turn_ended", 3);
  EXPECT_EQ(ended.at("data").at("stop_reason"), "cancelled");
  EXPECT_EQ(agents.detail(id).at("agent").at("state"), "idle");
}

TEST(AgentSessions, AfterARestartAnAgentThatLoadsSessionsIsResumedAndTheOthersAreLost) {
  AgentGateway agents({{.name = "loader", .extra = "env = { FAKE_ACP_LOAD_SESSION = \"1\" }"},
                       {.name = "forgetful"}},
                      "");
  const std::string resumable(
      agents.open({{"workspace_id", "w1"}, {"agent", "loader"}, {"prompt", "slow"}})
          .at("session_id")
          .as_string());
  const std::string lost(
      agents.open({{"workspace_id", "w2"}, {"agent", "forgetful"}, {"prompt", "hello"}})
          .at("session_id")
          .as_string());
  agents.wait_for_event(resumable, "agent.message");
  agents.wait_for_event(lost, "agent.turn_ended");
  agents.post(resumable, "/followups", {{"message", "echo after the restart"}});

  agents.restart();
  // The agent that offered session/load continues its session, and the queued follow-up is its
  // next turn; the other ends as failed with agent.lost. Nothing acknowledged is gone.
  agents.wait_for_event(resumable, "agent.resumed");
  const json::object next = agents.wait_for_event(resumable, "agent.turn_started", 2);
  EXPECT_EQ(next.at("data").at("prompt"), "echo after the restart");
  EXPECT_EQ(next.at("data").at("turn"), 2);  // turns are numbered on across the restart
  agents.wait_for_event(resumable, "agent.turn_ended");
  EXPECT_EQ(agents.detail(resumable).at("status"), "running");
  EXPECT_EQ(agents.detail(resumable).at("agent").at("turns_completed"), 1);
  EXPECT_EQ(agents.events_of(resumable, "followup").size(), 2u);
  // What the agent replayed while loading its session is not logged a second time.
  for (const auto& message : agents.events_of(resumable, "agent.message"))
    EXPECT_NE(text_of(message), "old history");

  agents.wait_for_status(lost, "failed");
  EXPECT_EQ(agents.events_of(lost, "agent.lost").size(), 1u);
  EXPECT_EQ(text_of(agents.events_of(lost, "agent.message").at(0)), "Hello, world");
}

}  // namespace
}  // namespace tau::test
