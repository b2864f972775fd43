#include "agent/stream_json_client.h"

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

constexpr std::int64_t kPermissionTimeoutMs = 500;

const char* const kCanUseTool = R"({"type":"control_request","request_id":"req-7","request":{
  "subtype":"can_use_tool","tool_name":"Bash","input":{"command":"ls -la"},
  "tool_use_id":"toolu_1","permission_suggestions":[]}})";

class StreamJsonClientTest : public ::testing::Test {
 protected:
  explicit StreamJsonClientTest(PermissionPolicy policy = PermissionPolicy::ask)
      : client_(AgentOptions{.workspace_dir = "/w",
                             .permission = policy,
                             .permission_timeout_ms = kPermissionTimeoutMs}) {}

  void start_turn(const std::string& text = "fix the build") {
    client_.start(0);
    client_.prompt(text, 1);
  }

  std::string ask_permission(std::int64_t now_ms = 10) {
    Output out = client_.on_line(kCanUseTool, now_ms);
    return std::string(
        only_event(out, event_types::permission_requested).data.at("request_id").as_string());
  }

  StreamJsonClient client_;
};

TEST_F(StreamJsonClientTest, StartNeedsNoHandshake) {
  Output out = client_.start(0);
  EXPECT_TRUE(out.lines_to_agent.empty());
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(client_.state(), AgentState::idle);
  EXPECT_FALSE(client_.startup_deadline_passed(1000000));
  EXPECT_EQ(client_.protocol(), "claude_stream_json");
}

TEST_F(StreamJsonClientTest, EachPromptIsOneUserLine) {
  client_.start(0);
  Output out = client_.prompt("fix the build", 1);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]), parse(R"({"type":"user","message":{"role":"user",
                      "content":[{"type":"text","text":"fix the build"}]}})"));
  const AgentEvent started = only_event(out, event_types::turn_started);
  EXPECT_EQ(started.data.at("turn"), 1);
  EXPECT_EQ(started.data.at("prompt"), "fix the build");
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_THROW(client_.prompt("queued", 2), std::logic_error);
}

TEST_F(StreamJsonClientTest, SystemInitGivesTheSessionId) {
  start_turn();
  Output out = client_.on_line(
      R"({"type":"system","subtype":"init","session_id":"abc-123","tools":["Bash"]})", 2);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(client_.agent_session_id(), "abc-123");
}

TEST_F(StreamJsonClientTest, AssistantBlocksBecomeThoughtMessageAndToolCall) {
  start_turn();
  Output out = client_.on_line(R"({"type":"assistant","message":{"id":"msg_1","role":"assistant",
    "content":[{"type":"thinking","thinking":"Check the tests."},
               {"type":"text","text":"Running them."},
               {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ctest"}}]}})",
                               5);
  ASSERT_EQ(event_types_of(out),
            (std::vector<std::string>{"agent.thought", "agent.message", "agent.tool_call"}));
  EXPECT_EQ(out.events[0].data.at("text"), "Check the tests.");
  EXPECT_EQ(out.events[1].data.at("text"), "Running them.");
  EXPECT_EQ(out.events[1].data.at("message_id"), "msg_1");
  EXPECT_EQ(out.events[1].data.at("turn"), 1);
  const AgentEvent& call = out.events[2];
  EXPECT_EQ(call.data.at("tool_call_id"), "toolu_1");
  EXPECT_EQ(call.data.at("title"), "Bash");
  EXPECT_EQ(call.data.at("kind"), "execute");
  EXPECT_EQ(call.data.at("status"), "pending");
  EXPECT_EQ(call.data.at("raw").at("input").at("command"), "ctest");
}

TEST_F(StreamJsonClientTest, TextOfOneMessageIsCoalesced) {
  start_turn();
  client_.on_line(
      R"({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"a"}]}})", 10);
  Output second = client_.on_line(
      R"({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"b"}]}})", 20);
  EXPECT_TRUE(second.events.empty());
  EXPECT_EQ(client_.next_flush_ms(), 60);
  EXPECT_EQ(only_event(client_.poll(60), event_types::message).data.at("text"), "ab");
}

TEST_F(StreamJsonClientTest, ToolResultsBecomeToolCallUpdates) {
  start_turn();
  Output out = client_.on_line(R"({"type":"user","message":{"role":"user","content":[
    {"type":"tool_result","tool_use_id":"toolu_1","content":"ok"},
    {"type":"tool_result","tool_use_id":"toolu_2","content":"boom","is_error":true}]}})",
                               5);
  ASSERT_EQ(event_types_of(out),
            (std::vector<std::string>{"agent.tool_call_update", "agent.tool_call_update"}));
  EXPECT_EQ(out.events[0].data.at("tool_call_id"), "toolu_1");
  EXPECT_EQ(out.events[0].data.at("status"), "completed");
  EXPECT_EQ(out.events[1].data.at("tool_call_id"), "toolu_2");
  EXPECT_EQ(out.events[1].data.at("status"), "failed");
}

TEST_F(StreamJsonClientTest, AResultEndsTheTurnWithUsageAndCost) {
  start_turn();
  client_.on_line(
      R"({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"done"}]}})", 5);
  Output out = client_.on_line(R"({"type":"result","subtype":"success","is_error":false,
    "result":"done","session_id":"abc","total_cost_usd":0.0123,
    "usage":{"input_tokens":10,"output_tokens":3}})",
                               6);
  ASSERT_EQ(event_types_of(out), (std::vector<std::string>{"agent.message", "agent.turn_ended"}));
  const AgentEvent& ended = out.events[1];
  EXPECT_EQ(ended.data.at("turn"), 1);
  EXPECT_EQ(ended.data.at("stop_reason"), "success");
  EXPECT_EQ(ended.data.at("subtype"), "success");
  EXPECT_EQ(ended.data.at("usage"), parse(R"({"input_tokens":10,"output_tokens":3})"));
  EXPECT_EQ(ended.data.at("total_cost_usd"), 0.0123);
  EXPECT_EQ(ended.data.at("raw").at("type"), "result");
  EXPECT_EQ(client_.state(), AgentState::idle);
  EXPECT_EQ(client_.turns_completed(), 1u);
  EXPECT_EQ(client_.last_stop_reason(), "success");
  EXPECT_EQ(client_.agent_session_id(), "abc");
}

TEST_F(StreamJsonClientTest, AResultsStopReasonWinsOverItsSubtype) {
  start_turn();
  Output out = client_.on_line(
      R"({"type":"result","subtype":"success","stop_reason":"end_turn","usage":{}})", 6);
  EXPECT_EQ(only_event(out, event_types::turn_ended).data.at("stop_reason"), "end_turn");
}

TEST_F(StreamJsonClientTest, AResultOutsideATurnIsAProtocolError) {
  client_.start(0);
  Output out = client_.on_line(R"({"type":"result","subtype":"success"})", 1);
  EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"});
  EXPECT_EQ(client_.turns_completed(), 0u);
}

TEST_F(StreamJsonClientTest, CanUseToolIsAPermissionRequestAnsweredAllow) {
  start_turn();
  Output asked = client_.on_line(kCanUseTool, 10);
  EXPECT_TRUE(asked.lines_to_agent.empty());
  const AgentEvent requested = only_event(asked, event_types::permission_requested);
  EXPECT_EQ(requested.data.at("tool_call"),
            parse(R"({"tool_call_id":"toolu_1","title":"Bash","kind":"execute"})"));
  EXPECT_EQ(requested.data.at("options"),
            parse(R"([{"option_id":"allow","name":"Allow","kind":"allow_once"},
                      {"option_id":"deny","name":"Deny","kind":"reject_once"}])"));
  EXPECT_EQ(client_.state(), AgentState::awaiting_permission);

  const std::string request_id(requested.data.at("request_id").as_string());
  EXPECT_EQ(client_.answer_permission(request_id, "sure", 11).status, AnswerStatus::invalid_option);
  PermissionAnswer answered = client_.answer_permission(request_id, "allow", 12);
  EXPECT_EQ(answered.status, AnswerStatus::answered);
  ASSERT_EQ(answered.output.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(answered.output.lines_to_agent[0]),
            parse(R"({"type":"control_response","response":{"subtype":"success",
                      "request_id":"req-7",
                      "response":{"behavior":"allow","updatedInput":{"command":"ls -la"}}}})"));
  const AgentEvent resolved = only_event(answered.output, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("outcome"), "selected");
  EXPECT_EQ(resolved.data.at("option_id"), "allow");
  EXPECT_EQ(resolved.data.at("by"), "api");
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_EQ(client_.answer_permission(request_id, "allow", 13).status,
            AnswerStatus::already_resolved);
  EXPECT_EQ(client_.answer_permission("perm-99", "allow", 13).status, AnswerStatus::not_found);
}

TEST_F(StreamJsonClientTest, CanUseToolAnsweredDeny) {
  start_turn();
  const std::string request_id = ask_permission();
  PermissionAnswer answered = client_.answer_permission(request_id, "deny", 12);
  ASSERT_EQ(answered.output.lines_to_agent.size(), 1u);
  object reply = line_json(answered.output.lines_to_agent[0]);
  EXPECT_EQ(reply.at("type"), "control_response");
  EXPECT_EQ(reply.at("response").at("subtype"), "success");
  EXPECT_EQ(reply.at("response").at("request_id"), "req-7");
  const value& decision = reply.at("response").at("response");
  EXPECT_EQ(decision.at("behavior"), "deny");
  EXPECT_FALSE(decision.at("message").as_string().empty());
  EXPECT_FALSE(decision.as_object().contains("updatedInput"));
}

TEST_F(StreamJsonClientTest, AnUnansweredCanUseToolTimesOutAsDeny) {
  start_turn();
  ask_permission(10);
  EXPECT_TRUE(client_.expire_permissions(10 + kPermissionTimeoutMs - 1).lines_to_agent.empty());
  Output expired = client_.expire_permissions(10 + kPermissionTimeoutMs);
  ASSERT_EQ(expired.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(expired.lines_to_agent[0]).at("response").at("response").at("behavior"),
            "deny");
  const AgentEvent resolved = only_event(expired, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("outcome"), "timed_out");
  EXPECT_EQ(resolved.data.at("by"), "timeout");
}

TEST_F(StreamJsonClientTest, CancelDeniesPendingRequestsAndSendsAnInterrupt) {
  start_turn();
  ask_permission();
  Output out = client_.cancel(20);
  ASSERT_EQ(out.lines_to_agent.size(), 2u);
  object denial = line_json(out.lines_to_agent[0]);
  EXPECT_EQ(denial.at("response").at("request_id"), "req-7");
  EXPECT_EQ(denial.at("response").at("response").at("behavior"), "deny");
  object interrupt = line_json(out.lines_to_agent[1]);
  EXPECT_EQ(interrupt.at("type"), "control_request");
  EXPECT_EQ(interrupt.at("request"), parse(R"({"subtype":"interrupt"})"));
  const value interrupt_id = interrupt.at("request_id");
  ASSERT_TRUE(interrupt_id.is_string());
  EXPECT_NE(interrupt_id, "req-7");
  EXPECT_EQ(only_event(out, event_types::permission_resolved).data.at("outcome"), "cancelled");

  // The CLI acknowledges our interrupt: nothing to log. A second acknowledgement is unexpected.
  const std::string ack =
      serialize(object{{"type", "control_response"},
                       {"response", {{"subtype", "success"}, {"request_id", interrupt_id}}}});
  EXPECT_TRUE(client_.on_line(ack, 21).events.empty());
  EXPECT_EQ(event_types_of(client_.on_line(ack, 22)),
            std::vector<std::string>{"agent.protocol_error"});

  Output ended = client_.on_line(R"({"type":"result","subtype":"error_during_execution",
    "is_error":true})",
                                 30);
  // Interrupted: cancelled, whatever the result says.
  EXPECT_EQ(only_event(ended, event_types::turn_ended).data.at("stop_reason"), "cancelled");
  EXPECT_EQ(only_event(ended, event_types::turn_ended).data.at("subtype"),
            "error_during_execution");
  EXPECT_EQ(client_.state(), AgentState::idle);
}

TEST_F(StreamJsonClientTest, AControlResponseToNoRequestOfOursIsAProtocolError) {
  start_turn();
  Output out = client_.on_line(
      R"({"type":"control_response","response":{"subtype":"success","request_id":"nope"}})", 5);
  EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"});
}

TEST_F(StreamJsonClientTest, TheAgentCanWithdrawItsRequest) {
  start_turn();
  const std::string request_id = ask_permission();
  Output out = client_.on_line(R"({"type":"control_cancel_request","request_id":"req-7"})", 11);
  EXPECT_TRUE(out.lines_to_agent.empty());
  const AgentEvent resolved = only_event(out, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("outcome"), "cancelled");
  EXPECT_EQ(resolved.data.at("by"), "agent");
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_EQ(client_.answer_permission(request_id, "allow", 12).status,
            AnswerStatus::already_resolved);
}

TEST_F(StreamJsonClientTest, OtherControlRequestsGetAnErrorResponse) {
  start_turn();
  Output out = client_.on_line(
      R"({"type":"control_request","request_id":"req-9","request":{"subtype":"hook_callback"}})",
      5);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  object reply = line_json(out.lines_to_agent[0]);
  EXPECT_EQ(reply.at("type"), "control_response");
  EXPECT_EQ(reply.at("response").at("subtype"), "error");
  EXPECT_EQ(reply.at("response").at("request_id"), "req-9");
  EXPECT_TRUE(out.events.empty());
}

TEST_F(StreamJsonClientTest, MalformedLinesAreProtocolErrorsAndTheTurnGoesOn) {
  start_turn();
  for (const char* line : {"{not json", "[]", "3", R"({"no":"type"})",
                           R"({"type":"control_request","request":{"subtype":"can_use_tool"}})",
                           R"({"type":"assistant","message":{}})"}) {
    Output out = client_.on_line(line, 5);
    EXPECT_EQ(event_types_of(out), std::vector<std::string>{"agent.protocol_error"}) << line;
  }
  EXPECT_TRUE(client_.on_line(R"({"type":"stream_event","event":{}})", 5).events.empty());
  EXPECT_EQ(client_.state(), AgentState::prompting);
  EXPECT_EQ(event_types_of(client_.on_line(R"({"type":"result","subtype":"success"})", 6)),
            std::vector<std::string>{"agent.turn_ended"});
}

class StreamJsonAllowPolicyTest : public StreamJsonClientTest {
 protected:
  StreamJsonAllowPolicyTest() : StreamJsonClientTest(PermissionPolicy::allow) {}
};

TEST_F(StreamJsonAllowPolicyTest, CanUseToolIsAllowedAtOnce) {
  start_turn();
  Output out = client_.on_line(kCanUseTool, 10);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  EXPECT_EQ(line_json(out.lines_to_agent[0]).at("response").at("response"),
            parse(R"({"behavior":"allow","updatedInput":{"command":"ls -la"}})"));
  EXPECT_EQ(only_event(out, event_types::permission_resolved).data.at("by"), "policy");
  EXPECT_EQ(client_.state(), AgentState::prompting);
}

class StreamJsonDenyPolicyTest : public StreamJsonClientTest {
 protected:
  StreamJsonDenyPolicyTest() : StreamJsonClientTest(PermissionPolicy::deny) {}
};

TEST_F(StreamJsonDenyPolicyTest, CanUseToolIsDeniedAtOnce) {
  start_turn();
  Output out = client_.on_line(kCanUseTool, 10);
  ASSERT_EQ(out.lines_to_agent.size(), 1u);
  object reply = line_json(out.lines_to_agent[0]);
  EXPECT_EQ(reply.at("response").at("request_id"), "req-7");
  EXPECT_EQ(reply.at("response").at("response").at("behavior"), "deny");
  const AgentEvent resolved = only_event(out, event_types::permission_resolved);
  EXPECT_EQ(resolved.data.at("option_id"), "deny");
  EXPECT_EQ(resolved.data.at("by"), "policy");
}

}  // namespace
}  // namespace tau::agent
