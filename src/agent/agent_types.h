#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// The vocabulary shared by the agent protocol clients (acp_client.h, stream_json_client.h):
// typed events, the connection's state, permission requests. No I/O anywhere in src/agent: the
// caller feeds agent output lines in and writes the returned lines to the agent's stdin.
namespace tau::agent {

// What the connection is doing. `awaiting_permission` wins over `prompting` while any request
// for permission is unanswered.
enum class AgentState { starting, idle, prompting, awaiting_permission, exited };
std::string_view to_string(AgentState state);

// The profile's permission policy (gateway::PermissionPolicy; the gateway maps one to the other
// so this library does not depend on it).
enum class PermissionPolicy { ask, allow, deny };

// One entry of the session log: event_type (agent.*), a one-line summary for people, and the
// details, with the agent's original message(s) under data["raw"].
struct AgentEvent {
  std::string event_type;
  std::string message;
  boost::json::object data;
};

// What a call produced: lines for the agent's stdin (without their newline), in order, and
// events for the session log, in order.
struct Output {
  std::vector<std::string> lines_to_agent;
  std::vector<AgentEvent> events;

  void append(Output other);
};

// A choice offered with a request for permission. kind: allow_once, allow_always, reject_once or
// reject_always (ACP's PermissionOptionKind).
struct PermissionOption {
  std::string option_id;
  std::string name;
  std::string kind;
};

// An unanswered request for permission. request_id is the gateway's (what clients answer with);
// agent_request_id is the agent's, echoed in the reply.
struct PendingPermission {
  std::string request_id;
  boost::json::value agent_request_id;
  boost::json::object tool_call;  // {tool_call_id, title, kind}, null where the agent gave none
  std::vector<PermissionOption> options;
  std::int64_t deadline_ms = 0;
  boost::json::object tool_input;  // stream-json only: echoed as updatedInput when allowed
};

// answer_permission's verdict; the gateway maps these to 404 permission_request_not_found,
// 409 permission_request_resolved and 400 invalid_option.
enum class AnswerStatus { answered, not_found, already_resolved, invalid_option };

struct PermissionAnswer {
  AnswerStatus status = AnswerStatus::answered;
  Output output;
};

struct AgentOptions {
  std::string workspace_dir;  // absolute: ACP's session/new cwd
  std::string client_version = "0";
  PermissionPolicy permission = PermissionPolicy::ask;
  std::int64_t permission_timeout_ms = 600000;  // AgentProfile::permission_timeout_ms
  std::int64_t startup_timeout_ms = 30000;      // from start() until the agent is idle
  // ACP: continue this agent session (session/load) instead of starting one (session/new).
  std::string resume_session_id;
  // With it, the turns the session had so far: numbering goes on from there.
  std::uint64_t resume_turns = 0;
  std::uint64_t resume_turns_completed = 0;
};

namespace event_types {
inline constexpr std::string_view turn_started = "agent.turn_started";
inline constexpr std::string_view message = "agent.message";
inline constexpr std::string_view thought = "agent.thought";
inline constexpr std::string_view tool_call = "agent.tool_call";
inline constexpr std::string_view tool_call_update = "agent.tool_call_update";
inline constexpr std::string_view plan = "agent.plan";
inline constexpr std::string_view permission_requested = "agent.permission_requested";
inline constexpr std::string_view permission_resolved = "agent.permission_resolved";
inline constexpr std::string_view turn_ended = "agent.turn_ended";
inline constexpr std::string_view protocol_error = "agent.protocol_error";
inline constexpr std::string_view resumed = "agent.resumed";
}  // namespace event_types

}  // namespace tau::agent
