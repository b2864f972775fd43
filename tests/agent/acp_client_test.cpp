#include "agent/acp_client.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>
#include <string>

#include "agent/agent_test_support.h"

namespace tau::agent {
namespace {

using boost::json::object;
using boost::json::parse;
using boost::json::serialize;
using boost::json::value;
using testing::event_types_of;
using testing::line_json;
using testing::only_event;

constexpr std::int64_t kPermissionTimeoutMs = 1000;

AgentOptions acp_options(PermissionPolicy policy = PermissionPolicy::ask) {
  AgentOptions options;
  options.workspace_dir = "/srv/workspaces/w1";
  options.client_version = "1.2.3";
  options.permission = policy;
  options.permission_timeout_ms = kPermissionTimeoutMs;
  options.startup_timeout_ms = 30000;
  return options;
}

std::string response(const value& id, const value& result) {
  return serialize(object{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

std::string agent_request(const value& id, std::string_view method, const value& params) {
  return serialize(object{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
}

std::string session_update(const value& update) {
  return serialize(object{{"jsonrpc", "2.0"},
                          {"method", "session/update"},
                          {"params", {{"sessionId", "sess-1"}, {"update", update}}}});
}

const value kPermissionParams = parse(R"({
  "sessionId": "sess-1",
  "toolCall": {"toolCallId": "call-1", "title": "Edit main.cpp", "kind": "edit"},
  "options": [
    {"optionId": "no", "name": "Reject", "kind": "reject_once"},
    {"optionId": "always", "name": "Always allow", "kind": "allow_always"},
    {"optionId": "yes", "name": "Allow", "kind": "allow_once"},
    {"optionId": "never", "name": "Never", "kind": "reject_always"}]})");

class AcpClientTest : public ::testing::Test {
 protected:
  explicit AcpClientTest(PermissionPolicy policy = PermissionPolicy::ask)
      : client_(acp_options(policy)) {}

  // initialize and session/new, answered as an agent would.
  void handshake() {
    Output started = client_.start(0);
    ASSERT_EQ(started.lines_to_agent.size(), 1u);
    Output created = client_.on_line(
        response(line_json(started.lines_to_agent[0]).at("id"),
                 parse(R"({"protocolVersion":1,"agentCapabilities":{"loadSession":true}})")),
        1);
    ASSERT_EQ(created.lines_to_agent.size(), 1u);
    client_.on_line(
        response(line_json(created.lines_to_agent[0]).at("id"), parse(R"({"sessionId":"sess-1"})")),
        2);
    ASSERT_EQ(client_.state(), AgentState::idle);
  }

  // Starts a turn; returns the session/prompt request's id.
  value start_turn(const std::string& text = "fix the build", std::int64_t now_ms = 10) {
    Output out = client_.prompt(text, now_ms);
    EXPECT_EQ(out.lines_to_agent.size(), 1u);
    return line_json(out.lines_to_agent.at(0)).at("id");
  }

  // The agent asks for permission with request id `id`; returns the gateway's request_id.
  std::string ask_permission(const value& id, std::int64_t now_ms = 20) {
    Output out =
        client_.on_line(agent_request(id, "session/request_permission", kPermissionParams), now_ms);
    return std::string(
        only_event(out, event_types::permission_requested).data.at("request_id").as_string());
  }

  AcpClient client_;
};

TEST_F(AcpClientTest, StartSendsInitializeWithTheClientsCapabilities) {
  Output out = client_.start(0);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_TRUE(out.events.empty());
  object initialize = line_json(out.lines_to_agent[0]);
  EXPECT_EQ(initialize.at("jsonrpc"), "2.0");
  EXPECT_EQ(initialize.at("method"), "initialize");
  EXPECT_TRUE(initialize.at("id").is_number());
  EXPECT_EQ(initialize.at("params"), parse(R"({
    "protocolVersion": 1,
    "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false},
                           "terminal": false},
    "clientInfo": {"name": "tau-gateway", "version": "1.2.3"}})"));
  EXPECT_EQ(client_.state(), AgentState::starting);
}

TEST_F(AcpClientTest, InitializeResultBringsSessionNewThenIdle) {
  Output started = client_.start(0);
  const value initialize_id = line_json(started.lines_to_agent[0]).at("id");
  Output created = client_.on_line(response(initialize_id, parse(R"({"protocolVersion":1,
                                         "agentCapabilities":{"loadSession":true}})")),
                                   5);
  ASSERT_EQ(created.lines_to_agent.size(), 1u);
  object session_new = line_json(created.lines_to_agent[0]);
  EXPECT_EQ(session_new.at("method"), "session/new");
  EXPECT_NE(session_new.at("id"), initialize_id);
  EXPECT_EQ(session_new.at("params"), parse(R"({"cwd":"/srv/workspaces/w1","mcpServers":[]})"));
  EXPECT_EQ(client_.state(), AgentState::starting);

  Output ready =
      client_.on_line(response(session_new.at("id"), parse(R"({"sessionId":"sess-42"})")), 6);
  EXPECT_TRUE(ready.lines_to_agent.empty());
  EXPECT_TRUE(ready.events.empty());
  EXPECT_EQ(client_.state(), AgentState::idle);
  EXPECT_EQ(client_.agent_session_id(), "sess-42");
  EXPECT_TRUE(client_.supports_load_session());
}

TEST_F(AcpClientTest, LoadSessionIsFalseUnlessTheAgentSaysTrue) {
  Output started = client_.start(0);
  Output created = client_.on_line(
      response(line_json(started.lines_to_agent[0]).at("id"), parse(R"({"protocolVersion":1})")),
      1);
  client_.on_line(
      response(line_json(created.lines_to_agent[0]).at("id"), parse(R"({"sessionId":"s"})")), 2);
  EXPECT_EQ(client_.state(), AgentState::idle);
  EXPECT_FALSE(client_.supports_load_session());
}

TEST_F(AcpClientTest, StartupDeadlinePassesOnlyWhileStarting) {
  client_.start(1000);
  EXPECT_FALSE(client_.startup_deadline_passed(30999));
  EXPECT_TRUE(client_.startup_deadline_passed(31000));

  AcpClient ready(acp_options());
  ready.start(0);
  EXPECT_FALSE(ready.startup_deadline_passed(0));
}

TEST_F(AcpClientTest, StartupDeadlineIsNotPassedOnceIdle) {
  handshake();
  EXPECT_FALSE(client_.startup_deadline_passed(1000000));
}

TEST_F(AcpClientTest, AnInitializeErrorFailsTheStartAtOnce) {
  Output started = client_.start(0);
  Output failed = client_.on_line(
      serialize(object{{"jsonrpc", "2.0"},
                       {"id", line_json(started.lines_to_agent[0]).at("id")},
                       {"error", {{"code", -32603}, {"message", "no model configured"}}}}),
      5);
  EXPECT_TRUE(failed.lines_to_agent.empty());
  EXPECT_EQ(event_types_of(failed), std::vector<std::string>{"agent.protocol_error"});
  EXPECT_NE(client_.startup_failure().find("no model configured"), std::string::npos);
  EXPECT_EQ(client_.state(), AgentState::starting);
  EXPECT_TRUE(client_.startup_deadline_passed(6));
}

TEST_F(AcpClientTest, AnUnsupportedProtocolVersionFailsTheStart) {
  Output started = client_.start(0);
  client_.on_line(
      response(line_json(started.lines_to_agent[0]).at("id"), parse(R"({"protocolVersion":2})")),
      1);
  EXPECT_FALSE(client_.startup_failure().empty());
  EXPECT_TRUE(client_.startup_deadline_passed(2));
}

TEST_F(AcpClientTest, ResponsesMatchOurIdsByExactJsonValue) {
  Output started = client_.start(0);
  const value id = line_json(started.lines_to_agent[0]).at("id");
  ASSERT_EQ(id, value(0));  // the first id is 0: the case a truthiness test would get wrong
  // "0" is not 0: an unknown id, so a protocol error, and the handshake waits on.
  Output wrong = client_.on_line(response("0", parse(R"({"protocolVersion":1})")), 1);
  EXPECT_EQ(event_types_of(wrong), std::vector<std::string>{"agent.protocol_error"});
  EXPECT_TRUE(wrong.lines_to_agent.empty());
  Output wrong_double = client_.on_line(response(0.0, parse(R"({"protocolVersion":1})")), 1);
  EXPECT_EQ(event_types_of(wrong_double), std::vector<std::string>{"agent.protocol_error"});

  Output right = client_.on_line(response(0, parse(R"({"protocolVersion":1})")), 2);
  EXPECT_TRUE(right.events.empty());
  ASSERT_EQ(right.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(right.lines_to_agent[0]).at("method"), "session/new");
}

TEST_F(AcpClientTest, AResponseToAnUnknownIdIsAProtocolErrorAndTheSessionGoesOn) {
  handshake();
  Output out = client_.on_line(response(99, object{}), 3);
  const AgentEvent error = only_event(out, event_types::protocol_error);
  EXPECT_NE(std::string(error.data.at("detail").as_string()).find("99"), std::string::npos);
  EXPECT_EQ(client_.state(), AgentState::idle);
  EXPECT_NO_THROW(start_turn());
}

TEST_F(AcpClientTest, PromptSendsSessionPromptAndItsResponseEndsTheTurn) {
  handshake();
  Output out = client_.prompt("fix the build", 10);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  object request = line_json(out.lines_to_agent[0]);
  EXPECT_EQ(request.at("method"), "session/prompt");
  EXPECT_EQ(request.at("params"),
            parse(R"({"sessionId":"sess-1","prompt":[{"type":"text","text":"fix the build"}]})"));
  const AgentEvent started = only_event(out, event_types::turn_started);
  EXPECT_EQ(started.data.at("turn"), 1);
  EXPECT_EQ(started.data.at("prompt"), "fix the build");
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_THROW(client_.prompt("again", 11), std::logic_error);

  Output ended = client_.on_line(
      response(request.at("id"), parse(R"({"stopReason":"end_turn","usage":{"totalTokens":7}})")),
      20);
  const AgentEvent end = only_event(ended, event_types::turn_ended);
  EXPECT_EQ(end.data.at("turn"), 1);
  EXPECT_EQ(end.data.at("stop_reason"), "end_turn");
  EXPECT_EQ(end.data.at("usage"), parse(R"({"totalTokens":7})"));
  EXPECT_EQ(end.data.at("raw").at("result").at("stopReason"), "end_turn");
  EXPECT_EQ(client_.state(), AgentState::idle);
  EXPECT_EQ(client_.turns_completed(), 1u);
  EXPECT_EQ(client_.last_stop_reason(), "end_turn");

  start_turn("second");
  EXPECT_EQ(client_.current_turn(), 2u);
}

TEST_F(AcpClientTest, APromptErrorEndsTheTurnWithStopReasonError) {
  handshake();
  const value id = start_turn();
  Output out =
      client_.on_line(serialize(object{{"jsonrpc", "2.0"},
                                       {"id", id},
                                       {"error", {{"code", -32603}, {"message", "rate limited"}}}}),
                      20);
  const AgentEvent end = only_event(out, event_types::turn_ended);
  EXPECT_EQ(end.data.at("stop_reason"), "error");
  EXPECT_EQ(end.data.at("error").at("message"), "rate limited");
  EXPECT_EQ(client_.state(), AgentState::idle);
}

TEST_F(AcpClientTest, PromptBeforeTheHandshakeEndsThrows) {
  client_.start(0);
  EXPECT_THROW(client_.prompt("too early", 1), std::logic_error);
}

TEST_F(AcpClientTest, UnknownAgentMethodsGetMethodNotFoundEvenWhileOurPromptIsPending) {
  handshake();
  const value prompt_id = start_turn();
  Output out = client_.on_line(
      agent_request(7, "fs/read_text_file", parse(R"({"sessionId":"sess-1","path":"/etc/x"})")),
      15);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  object reply = line_json(out.lines_to_agent[0]);
  EXPECT_EQ(reply.at("jsonrpc"), "2.0");
  EXPECT_EQ(reply.at("id"), 7);
  EXPECT_EQ(reply.at("error").at("code"), -32601);
  EXPECT_FALSE(reply.contains("result"));
  EXPECT_TRUE(out.events.empty());

  // Our prompt is still matched to its response afterwards.
  Output ended = client_.on_line(response(prompt_id, parse(R"({"stopReason":"end_turn"})")), 20);
  EXPECT_EQ(event_types_of(ended), std::vector<std::string>{"agent.turn_ended"});
}

TEST_F(AcpClientTest, UnknownNotificationsAreIgnored) {
  handshake();
  Output out =
      client_.on_line(R"({"jsonrpc":"2.0","method":"_vendor/telemetry","params":{"x":1}})", 3);
  EXPECT_TRUE(out.lines_to_agent.empty());
  EXPECT_TRUE(out.events.empty());
}

TEST_F(AcpClientTest, ARequestWithANullIdIsInvalid) {
  handshake();
  Output out =
      client_.on_line(agent_request(nullptr, "session/request_permission", kPermissionParams), 3);
  EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"});
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  object reply = line_json(out.lines_to_agent[0]);
  EXPECT_TRUE(reply.at("id").is_null());
  EXPECT_EQ(reply.at("error").at("code"), -32600);
  EXPECT_TRUE(client_.pending_permissions().empty());
}

TEST_F(AcpClientTest, MalformedLinesAreProtocolErrorsAndTheSessionGoesOn) {
  handshake();
  const value prompt_id = start_turn();
  for (const char* line : {"not json at all", "[1,2,3]", "42", R"("text")", "{}",
                           R"({"jsonrpc":"2.0","id":3})", R"({"jsonrpc":"2.0","method":5})"}) {
    Output out = client_.on_line(line, 15);
    EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"}) << line;
    EXPECT_FALSE(
        only_event(out, event_types::protocol_error).data.at("detail").as_string().empty());
    EXPECT_TRUE(out.lines_to_agent.empty()) << line;
  }
  EXPECT_TRUE(client_.on_line("   ", 15).events.empty());  // a blank line is no message
  EXPECT_EQ(client_.state(), AgentState::prompting);
  Output ended = client_.on_line(response(prompt_id, parse(R"({"stopReason":"end_turn"})")), 20);
  EXPECT_EQ(event_types_of(ended), std::vector<std::string>{"agent.turn_ended"});
}

TEST_F(AcpClientTest, ToolCallsUpdatesAndPlansBecomeTypedEvents) {
  handshake();
  start_turn();
  Output call = client_.on_line(session_update(parse(R"({"sessionUpdate":"tool_call",
      "toolCallId":"call-1","title":"Read main.cpp","kind":"read","status":"in_progress"})")),
                                11);
  const AgentEvent tool_call = only_event(call, event_types::tool_call);
  EXPECT_EQ(tool_call.data.at("turn"), 1);
  EXPECT_EQ(tool_call.data.at("tool_call_id"), "call-1");
  EXPECT_EQ(tool_call.data.at("title"), "Read main.cpp");
  EXPECT_EQ(tool_call.data.at("kind"), "read");
  EXPECT_EQ(tool_call.data.at("status"), "in_progress");
  EXPECT_EQ(tool_call.data.at("raw").at("sessionUpdate"), "tool_call");
  EXPECT_FALSE(tool_call.message.empty());

  Output defaults = client_.on_line(
      session_update(parse(R"({"sessionUpdate":"tool_call","toolCallId":"call-2","title":"t"})")),
      12);
  const AgentEvent defaulted = only_event(defaults, event_types::tool_call);
  EXPECT_EQ(defaulted.data.at("kind"), "other");
  EXPECT_EQ(defaulted.data.at("status"), "pending");

  Output update = client_.on_line(session_update(parse(R"({"sessionUpdate":"tool_call_update",
      "toolCallId":"call-1","status":"completed"})")),
                                  13);
  const AgentEvent updated = only_event(update, event_types::tool_call_update);
  EXPECT_EQ(updated.data.at("turn"), 1);
  EXPECT_EQ(updated.data.at("tool_call_id"), "call-1");
  EXPECT_EQ(updated.data.at("status"), "completed");

  const value entries = parse(R"([{"content":"build","priority":"high","status":"pending"}])");
  Output plan =
      client_.on_line(session_update(object{{"sessionUpdate", "plan"}, {"entries", entries}}), 14);
  EXPECT_EQ(only_event(plan, event_types::plan).data.at("entries"), entries);

  Output ignored =
      client_.on_line(session_update(parse(R"({"sessionUpdate":"available_commands_update",
                               "availableCommands":[]})")),
                      15);
  EXPECT_TRUE(ignored.events.empty());
}

TEST_F(AcpClientTest, ASessionUpdateWithoutAnUpdateIsAProtocolError) {
  handshake();
  Output out = client_.on_line(
      R"({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"sess-1"}})", 3);
  EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"});
}

TEST_F(AcpClientTest, OnExitLeavesTheConnectionExited) {
  handshake();
  start_turn();
  client_.on_exit(30);
  EXPECT_EQ(client_.state(), AgentState::exited);
  EXPECT_THROW(client_.prompt("x", 31), std::logic_error);
}

TEST_F(AcpClientTest, APermissionRequestWaitsForTheClientsAnswer) {
  handshake();
  const value prompt_id = start_turn();
  Output asked =
      client_.on_line(agent_request("req-a", "session/request_permission", kPermissionParams), 20);
  EXPECT_TRUE(asked.lines_to_agent.empty());
  const AgentEvent requested = only_event(asked, event_types::permission_requested);
  const std::string request_id(requested.data.at("request_id").as_string());
  EXPECT_FALSE(request_id.empty());
  EXPECT_EQ(requested.data.at("tool_call"),
            parse(R"({"tool_call_id":"call-1","title":"Edit main.cpp","kind":"edit"})"));
  EXPECT_EQ(requested.data.at("options"), parse(R"([
    {"option_id":"no","name":"Reject","kind":"reject_once"},
    {"option_id":"always","name":"Always allow","kind":"allow_always"},
    {"option_id":"yes","name":"Allow","kind":"allow_once"},
    {"option_id":"never","name":"Never","kind":"reject_always"}])"));
  EXPECT_EQ(requested.data.at("raw").at("toolCall").at("toolCallId"), "call-1");
  EXPECT_EQ(client_.state(), AgentState::awaiting_permission);
  ASSERT_EQ(client_.pending_permissions().size(), 1u);
  EXPECT_EQ(client_.pending_permissions()[0].request_id, request_id);
  EXPECT_EQ(client_.next_permission_deadline_ms(), 20 + kPermissionTimeoutMs);

  EXPECT_EQ(client_.answer_permission("perm-none", "yes", 21).status, AnswerStatus::not_found);
  PermissionAnswer invalid = client_.answer_permission(request_id, "maybe", 21);
  EXPECT_EQ(invalid.status, AnswerStatus::invalid_option);
  EXPECT_TRUE(invalid.output.lines_to_agent.empty());
  EXPECT_EQ(client_.state(), AgentState::awaiting_permission);

  PermissionAnswer answered = client_.answer_permission(request_id, "yes", 22);
  EXPECT_EQ(answered.status, AnswerStatus::answered);
  ASSERT_EQ(answered.output.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(answered.output.lines_to_agent[0]), parse(R"({"jsonrpc":"2.0","id":"req-a",
                      "result":{"outcome":{"outcome":"selected","optionId":"yes"}}})"));
  const AgentEvent resolved = only_event(answered.output, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("request_id"), value(request_id));
  EXPECT_EQ(resolved.data.at("outcome"), "selected");
  EXPECT_EQ(resolved.data.at("option_id"), "yes");
  EXPECT_EQ(resolved.data.at("by"), "api");
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_TRUE(client_.pending_permissions().empty());
  EXPECT_FALSE(client_.next_permission_deadline_ms().has_value());

  EXPECT_EQ(client_.answer_permission(request_id, "yes", 23).status,
            AnswerStatus::already_resolved);
  Output ended = client_.on_line(response(prompt_id, parse(R"({"stopReason":"end_turn"})")), 30);
  EXPECT_EQ(client_.state(), AgentState::idle);
}

TEST_F(AcpClientTest, AgentRequestIdsZeroNumbersAndStringsAreEchoedExactly) {
  handshake();
  start_turn();
  for (const value& id : {value(0), value(17), value("0"), value("x-9")}) {
    const std::string request_id = ask_permission(id);
    PermissionAnswer answered = client_.answer_permission(request_id, "no", 21);
    ASSERT_EQ(answered.output.lines_to_agent.size(), 1u);
    const value echoed = line_json(answered.output.lines_to_agent[0]).at("id");
    EXPECT_EQ(echoed, id) << serialize(id);
    EXPECT_EQ(echoed.kind(), id.kind()) << serialize(id);
  }
}

TEST_F(AcpClientTest, APermissionRequestWhileOurPromptIsPendingLeavesThePromptMatched) {
  handshake();
  const value prompt_id = start_turn();
  // The agent's request id equals our prompt's id: two id spaces, no confusion.
  const std::string request_id = ask_permission(prompt_id);
  client_.answer_permission(request_id, "yes", 21);
  Output ended = client_.on_line(response(prompt_id, parse(R"({"stopReason":"end_turn"})")), 30);
  EXPECT_EQ(event_types_of(ended), std::vector<std::string>{"agent.turn_ended"});
}

TEST_F(AcpClientTest, CancelAnswersPendingPermissionsCancelledThenSendsSessionCancel) {
  handshake();
  const value prompt_id = start_turn();
  const std::string first = ask_permission("a");
  const std::string second = ask_permission(5);
  EXPECT_EQ(client_.pending_permissions().size(), 2u);

  Output out = client_.cancel(25);
  ASSERT_EQ(out.lines_to_agent.size(), 3u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]),
            parse(R"({"jsonrpc":"2.0","id":"a","result":{"outcome":{"outcome":"cancelled"}}})"));
  EXPECT_EQ(line_json(out.lines_to_agent[1]),
            parse(R"({"jsonrpc":"2.0","id":5,"result":{"outcome":{"outcome":"cancelled"}}})"));
  EXPECT_EQ(
      line_json(out.lines_to_agent[2]),
      parse(R"({"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"sess-1"}})"));
  ASSERT_EQ(event_types_of(out),
            (std::vector<std::string>{"agent.permission_resolved", "agent.permission_resolved"}));
  for (const auto& event : out.events) {
    EXPECT_EQ(event.data.at("outcome"), "cancelled");
    EXPECT_TRUE(event.data.at("option_id").is_null());
    EXPECT_EQ(event.data.at("by"), "api");
  }
  EXPECT_EQ(client_.state(), AgentState::prompting);  // until the agent ends the turn
  EXPECT_EQ(client_.answer_permission(first, "yes", 26).status, AnswerStatus::already_resolved);

  Output ended = client_.on_line(response(prompt_id, parse(R"({"stopReason":"cancelled"})")), 30);
  EXPECT_EQ(only_event(ended, event_types::turn_ended).data.at("stop_reason"), "cancelled");
  EXPECT_EQ(client_.last_stop_reason(), "cancelled");
  EXPECT_EQ(client_.state(), AgentState::idle);
}

TEST_F(AcpClientTest, CancelWithoutATurnSendsNothing) {
  handshake();
  Output out = client_.cancel(5);
  EXPECT_TRUE(out.lines_to_agent.empty());
  EXPECT_TRUE(out.events.empty());
}

TEST_F(AcpClientTest, AnUnansweredPermissionRequestTimesOut) {
  handshake();
  start_turn();
  const std::string request_id = ask_permission("t", 100);
  ASSERT_EQ(client_.next_permission_deadline_ms(), 100 + kPermissionTimeoutMs);
  Output early = client_.expire_permissions(100 + kPermissionTimeoutMs - 1);
  EXPECT_TRUE(early.lines_to_agent.empty());
  EXPECT_TRUE(early.events.empty());

  Output expired = client_.expire_permissions(100 + kPermissionTimeoutMs);
  ASSERT_EQ(expired.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(expired.lines_to_agent[0]),
            parse(R"({"jsonrpc":"2.0","id":"t","result":{"outcome":{"outcome":"cancelled"}}})"));
  const AgentEvent resolved = only_event(expired, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("outcome"), "timed_out");
  EXPECT_EQ(resolved.data.at("by"), "timeout");
  EXPECT_TRUE(resolved.data.at("option_id").is_null());
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_EQ(client_.answer_permission(request_id, "yes", 2000).status,
            AnswerStatus::already_resolved);
}

class AcpAllowPolicyTest : public AcpClientTest {
 protected:
  AcpAllowPolicyTest() : AcpClientTest(PermissionPolicy::allow) {}
};

TEST_F(AcpAllowPolicyTest, AnswersAtOnceWithTheFirstAllowOption) {
  handshake();
  start_turn();
  Output out =
      client_.on_line(agent_request(3, "session/request_permission", kPermissionParams), 20);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]), parse(R"({"jsonrpc":"2.0","id":3,
                      "result":{"outcome":{"outcome":"selected","optionId":"always"}}})"));
  ASSERT_EQ(event_types_of(out),
            (std::vector<std::string>{"agent.permission_requested", "agent.permission_resolved"}));
  EXPECT_EQ(out.events[1].data.at("outcome"), "selected");
  EXPECT_EQ(out.events[1].data.at("option_id"), "always");
  EXPECT_EQ(out.events[1].data.at("by"), "policy");
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_TRUE(client_.pending_permissions().empty());
}

TEST_F(AcpAllowPolicyTest, WithoutAnAllowOptionTheRequestIsCancelled) {
  handshake();
  start_turn();
  Output out =
      client_.on_line(agent_request(4, "session/request_permission",
                                    parse(R"({"sessionId":"sess-1","toolCall":{"toolCallId":"c"},
                              "options":[{"optionId":"no","name":"No","kind":"reject_once"}]})")),
                      20);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]).at("result"),
            parse(R"({"outcome":{"outcome":"cancelled"}})"));
  EXPECT_EQ(only_event(out, event_types::permission_resolved).data.at("by"), "policy");
}

class AcpDenyPolicyTest : public AcpClientTest {
 protected:
  AcpDenyPolicyTest() : AcpClientTest(PermissionPolicy::deny) {}
};

TEST_F(AcpDenyPolicyTest, AnswersAtOnceWithTheFirstRejectOption) {
  handshake();
  start_turn();
  Output out =
      client_.on_line(agent_request(3, "session/request_permission", kPermissionParams), 20);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]).at("result"),
            parse(R"({"outcome":{"outcome":"selected","optionId":"no"}})"));
  const AgentEvent resolved = only_event(out, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("option_id"), "no");
  EXPECT_EQ(resolved.data.at("by"), "policy");
}

TEST_F(AcpClientTest, APermissionRequestWithoutOptionsIsInvalidParams) {
  handshake();
  start_turn();
  Output out = client_.on_line(
      agent_request(8, "session/request_permission",
                    parse(R"({"sessionId":"sess-1","toolCall":{"toolCallId":"c"},"options":[]})")),
      20);
  EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"});
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]).at("error").at("code"), -32602);
  EXPECT_EQ(line_json(out.lines_to_agent[0]).at("id"), 8);
  EXPECT_EQ(client_.state(), AgentState::prompting);
}

TEST_F(AcpClientTest, SnapshotShowsStateTurnsAndPendingPermissions) {
  handshake();
  const value prompt_id = start_turn();
  client_.on_line(response(prompt_id, parse(R"({"stopReason":"max_tokens"})")), 11);
  start_turn("next");
  const std::string request_id = ask_permission("s");
  object snapshot = client_.snapshot("claude");
  EXPECT_EQ(snapshot.at("name"), "claude");
  EXPECT_EQ(snapshot.at("protocol"), "acp");
  EXPECT_EQ(snapshot.at("state"), "awaiting_permission");
  EXPECT_EQ(snapshot.at("turns_completed"), 1);
  EXPECT_EQ(snapshot.at("last_stop_reason"), "max_tokens");
  ASSERT_EQ(snapshot.at("pending_permissions").as_array().size(), 1u);
  EXPECT_EQ(snapshot.at("pending_permissions").at(0).at("request_id"), value(request_id));
}

}  // namespace
}  // namespace tau::agent
