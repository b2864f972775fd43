#include "agent/stream_json_client.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <utility>

#include "agent/json_fields.h"

namespace tau::agent {
namespace {

using json_fields::array_at;
using json_fields::object_at;
using json_fields::string_at;
using json_fields::value_at;

// Claude Code's tool names as ACP's ToolKind, so both protocols' agent.tool_call events say the
// same about what a tool does.
std::string_view tool_kind(std::string_view tool_name) {
  if (tool_name == "Read" || tool_name == "NotebookRead")
    return "read";
  if (tool_name == "Edit" || tool_name == "MultiEdit" || tool_name == "Write" ||
      tool_name == "NotebookEdit")
    return "edit";
  if (tool_name == "Bash" || tool_name == "BashOutput" || tool_name == "KillShell")
    return "execute";
  if (tool_name == "Grep" || tool_name == "Glob" || tool_name == "LS")
    return "search";
  if (tool_name == "WebFetch" || tool_name == "WebSearch")
    return "fetch";
  return "other";
}

AgentEvent tool_use_event(std::uint64_t turn, const boost::json::object& block) {
  const std::string id(string_at(block, "id"));
  const std::string name(string_at(block, "name"));
  const std::string_view kind = tool_kind(name);
  // A tool_use block is the model asking for the tool; it has not run yet.
  return {std::string(event_types::tool_call),
          "tool call " + id + ": " + name + " (" + std::string(kind) + ", pending)",
          {{"turn", turn},
           {"tool_call_id", id},
           {"title", name},
           {"kind", kind},
           {"status", "pending"},
           {"raw", block}}};
}

AgentEvent tool_result_event(std::uint64_t turn, const boost::json::object& block) {
  const std::string id(string_at(block, "tool_use_id"));
  const auto* is_error = block.if_contains("is_error");
  const std::string_view status =
      is_error && is_error->is_bool() && is_error->get_bool() ? "failed" : "completed";
  return {std::string(event_types::tool_call_update),
          "tool call " + id + ": " + std::string(status),
          {{"turn", turn}, {"tool_call_id", id}, {"status", status}, {"raw", block}}};
}

}  // namespace

Output StreamJsonClient::start(std::int64_t now_ms) {
  // Claude Code reads its first user line whenever it comes, and says nothing before it (its
  // system init line follows the first prompt): nothing to wait for.
  mark_started(now_ms);
  mark_ready();
  return {};
}

Output StreamJsonClient::on_line(std::string_view line, std::int64_t now_ms) {
  Output out;
  if (auto message = parse_line(out, line, "stream-json message"))
    on_message(out, *message, now_ms);
  return out;
}

boost::json::object StreamJsonClient::prompt_message(const std::string& text) {
  return {{"type", "user"},
          {"message", {{"role", "user"}, {"content", {{{"type", "text"}, {"text", text}}}}}}};
}

std::vector<boost::json::object> StreamJsonClient::cancel_messages() {
  interrupted_ = true;
  std::string request_id = "tau-" + std::to_string(++control_requests_sent_);
  awaiting_control_responses_.push_back(request_id);
  return {{{"type", "control_request"},
           {"request_id", std::move(request_id)},
           {"request", {{"subtype", "interrupt"}}}}};
}

boost::json::object StreamJsonClient::permission_reply(const PendingPermission& request,
                                                       const PermissionOption* chosen,
                                                       std::string_view reason) {
  // The SDKs' PermissionResult: allow must echo the tool's input as updatedInput (the CLI runs
  // the tool with it); deny carries a message the model reads.
  boost::json::object decision{{"behavior", "deny"}, {"message", reason}};
  if (chosen && chosen->option_id == kAllowOption)
    decision = {{"behavior", "allow"}, {"updatedInput", request.tool_input}};
  return {{"type", "control_response"},
          {"response",
           {{"subtype", "success"},
            {"request_id", request.agent_request_id},
            {"response", std::move(decision)}}}};
}

void StreamJsonClient::on_message(Output& out, const boost::json::object& message,
                                  std::int64_t now_ms) {
  const std::string_view type = string_at(message, "type");
  if (type == "system") {
    if (string_at(message, "subtype") == "init")
      set_agent_session_id(std::string(string_at(message, "session_id")));
  } else if (type == "assistant") {
    on_assistant(out, message, now_ms);
  } else if (type == "user") {
    on_tool_results(out, message);
  } else if (type == "result") {
    on_result(out, message);
  } else if (type == "control_request") {
    on_control_request(out, message, now_ms);
  } else if (type == "control_response") {
    on_control_response(out, message);
  } else if (type == "control_cancel_request") {
    // The CLI no longer needs an answer to its can_use_tool request (e.g. it was interrupted).
    withdraw_permission(out, value_at(message, "request_id"));
  } else if (type.empty()) {
    protocol_error(out, "a stream-json message without a type", message);
  }
  // Other types (stream_event, keep_alive, ...) carry nothing the session log needs.
}

void StreamJsonClient::on_assistant(Output& out, const boost::json::object& message,
                                    std::int64_t now_ms) {
  const auto* body = object_at(message, "message");
  const auto* content = body ? array_at(*body, "content") : nullptr;
  if (!content) {
    protocol_error(out, "an assistant message without content", message);
    return;
  }
  const std::string_view message_id = string_at(*body, "id");
  for (const auto& entry : *content) {
    const auto* block = entry.if_object();
    if (!block)
      continue;
    const std::string_view block_type = string_at(*block, "type");
    if (block_type == "text") {
      add_text(out, TextKind::message, message_id, string_at(*block, "text"), *block, now_ms);
    } else if (block_type == "thinking") {
      add_text(out, TextKind::thought, message_id, string_at(*block, "thinking"), *block, now_ms);
    } else if (block_type == "tool_use") {
      emit(out, tool_use_event(current_turn(), *block));
    }
  }
}

void StreamJsonClient::on_tool_results(Output& out, const boost::json::object& message) {
  // Only the CLI's own user lines (tool results) come back; a string content is an echo.
  const auto* body = object_at(message, "message");
  const auto* content = body ? array_at(*body, "content") : nullptr;
  if (!content)
    return;
  for (const auto& entry : *content) {
    const auto* block = entry.if_object();
    if (block && string_at(*block, "type") == "tool_result")
      emit(out, tool_result_event(current_turn(), *block));
  }
}

void StreamJsonClient::on_result(Output& out, const boost::json::object& message) {
  if (!turn_active()) {
    protocol_error(out, "a result line outside a turn", message);
    return;
  }
  if (agent_session_id().empty())
    set_agent_session_id(std::string(string_at(message, "session_id")));
  // Newer CLIs give the model's stop_reason; the subtype (success, error_max_turns,
  // error_during_execution, ...) always says how the turn ended.
  const std::string_view subtype = string_at(message, "subtype", "unknown");
  // A turn we interrupted reports the model's last stop_reason (tool_use when a tool waited for
  // permission) or none: it says cancelled, as ACP does.
  const std::string stop_reason(std::exchange(interrupted_, false)
                                    ? std::string("cancelled")
                                    : std::string(string_at(message, "stop_reason", subtype)));
  end_turn(out, stop_reason,
           {{"subtype", subtype},
            {"is_error", value_at(message, "is_error")},
            {"usage", value_at(message, "usage")},
            {"total_cost_usd", value_at(message, "total_cost_usd")}},
           message);
}

void StreamJsonClient::on_control_request(Output& out, const boost::json::object& message,
                                          std::int64_t now_ms) {
  const boost::json::value request_id = value_at(message, "request_id");
  const auto* request = object_at(message, "request");
  if (!request_id.is_string() || !request) {
    protocol_error(out, "a control_request without a request_id or request", message);
    return;
  }
  const std::string_view subtype = string_at(*request, "subtype");
  if (subtype != "can_use_tool") {
    // Hooks and SDK MCP servers are never configured by this client.
    boost::json::object reply{
        {"type", "control_response"},
        {"response",
         {{"subtype", "error"},
          {"request_id", request_id},
          {"error", "unsupported control request: " + std::string(subtype)}}}};
    out.lines_to_agent.push_back(boost::json::serialize(reply));
    return;
  }
  const std::string_view tool_name = string_at(*request, "tool_name");
  PendingPermission pending;
  pending.agent_request_id = request_id;
  pending.tool_call = {{"tool_call_id", value_at(*request, "tool_use_id")},
                       {"title", tool_name},
                       {"kind", tool_kind(tool_name)}};
  if (const auto* input = object_at(*request, "input"))
    pending.tool_input = *input;
  pending.options = {{std::string(kAllowOption), "Allow", "allow_once"},
                     {std::string(kDenyOption), "Deny", "reject_once"}};
  request_permission(out, std::move(pending), message, now_ms);
}

void StreamJsonClient::on_control_response(Output& out, const boost::json::object& message) {
  const auto* response = object_at(message, "response");
  const std::string request_id(response ? string_at(*response, "request_id") : "");
  auto found =
      std::find(awaiting_control_responses_.begin(), awaiting_control_responses_.end(), request_id);
  if (found == awaiting_control_responses_.end()) {
    protocol_error(out, "a control_response to no request of ours: " + request_id, message);
    return;
  }
  awaiting_control_responses_.erase(found);
  if (string_at(*response, "subtype") == "error")
    protocol_error(out,
                   "the agent refused an interrupt: " +
                       std::string(string_at(*response, "error", "no reason given")),
                   message);
}

}  // namespace tau::agent
