#include "agent/acp_client.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <string>

#include "agent/json_fields.h"

namespace tau::agent {
namespace {

using json_fields::array_at;
using json_fields::object_at;
using json_fields::string_at;
using json_fields::value_at;

// JSON-RPC 2.0 error codes.
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;

bool valid_request_id(const boost::json::value& id) {
  return id.is_string() || id.is_number();
}

// ACP's ToolCall / ToolCallUpdate reduced to the fields every protocol's events share.
boost::json::object tool_call_summary(const boost::json::object& tool_call) {
  return {{"tool_call_id", value_at(tool_call, "toolCallId")},
          {"title", value_at(tool_call, "title")},
          {"kind", value_at(tool_call, "kind")}};
}

AgentEvent tool_call_event(std::uint64_t turn, const boost::json::object& update) {
  const std::string id(string_at(update, "toolCallId"));
  const std::string title(string_at(update, "title"));
  // ToolCall's kind and status default to "other" and "pending" when the agent leaves them out.
  const std::string kind(string_at(update, "kind", "other"));
  const std::string status(string_at(update, "status", "pending"));
  return {std::string(event_types::tool_call),
          "tool call " + id + ": " + summarize(title) + " (" + kind + ", " + status + ")",
          {{"turn", turn},
           {"tool_call_id", id},
           {"title", title},
           {"kind", kind},
           {"status", status},
           {"raw", update}}};
}

AgentEvent tool_call_update_event(std::uint64_t turn, const boost::json::object& update) {
  const std::string id(string_at(update, "toolCallId"));
  boost::json::value status = value_at(update, "status");  // null: unchanged
  std::string summary = "tool call " + id + " updated";
  if (status.is_string())
    summary = "tool call " + id + ": " + std::string(status.get_string());
  AgentEvent event{
      std::string(event_types::tool_call_update),
      std::move(summary),
      {{"turn", turn}, {"tool_call_id", id}, {"status", std::move(status)}, {"raw", update}}};
  // Agents may fill in what a call does only now (OpenCode's title becomes the command).
  for (const char* field : {"title", "kind"}) {
    if (const auto* value = update.if_contains(field); value && value->is_string())
      event.data[field] = *value;
  }
  return event;
}

AgentEvent plan_event(const boost::json::object& update) {
  boost::json::value entries = value_at(update, "entries");
  if (!entries.is_array())
    entries = boost::json::array();
  const std::string summary =
      "plan with " + std::to_string(entries.get_array().size()) + " entries";
  return {
      std::string(event_types::plan), summary, {{"entries", std::move(entries)}, {"raw", update}}};
}

}  // namespace

Output AcpClient::start(std::int64_t now_ms) {
  mark_started(now_ms);
  boost::json::object params{
      {"protocolVersion", kProtocolVersion},
      {"clientCapabilities",
       {{"fs", {{"readTextFile", false}, {"writeTextFile", false}}}, {"terminal", false}}},
      {"clientInfo", {{"name", "tau-gateway"}, {"version", options().client_version}}}};
  Output out;
  out.lines_to_agent.push_back(
      boost::json::serialize(request(Call::initialize, "initialize", std::move(params))));
  return out;
}

Output AcpClient::on_line(std::string_view line, std::int64_t now_ms) {
  Output out;
  if (auto message = parse_line(out, line, "JSON-RPC message"))
    on_message(out, std::move(*message), now_ms);
  return out;
}

boost::json::object AcpClient::prompt_message(const std::string& text) {
  boost::json::object params{{"sessionId", agent_session_id()},
                             {"prompt", {{{"type", "text"}, {"text", text}}}}};
  return request(Call::prompt, "session/prompt", std::move(params));
}

std::vector<boost::json::object> AcpClient::cancel_messages() {
  return {{{"jsonrpc", "2.0"},
           {"method", "session/cancel"},
           {"params", {{"sessionId", agent_session_id()}}}}};
}

boost::json::object AcpClient::permission_reply(const PendingPermission& request,
                                                const PermissionOption* chosen,
                                                std::string_view /*reason*/) {
  // RequestPermissionOutcome: a rejection the client chose is "selected" with a reject option;
  // "cancelled" is for a request nobody answered (turn cancelled, timed out, no fitting option).
  boost::json::object outcome{{"outcome", "cancelled"}};
  if (chosen)
    outcome = {{"outcome", "selected"}, {"optionId", chosen->option_id}};
  return {{"jsonrpc", "2.0"},
          {"id", request.agent_request_id},
          {"result", {{"outcome", std::move(outcome)}}}};
}

boost::json::object AcpClient::request(Call call, std::string_view method,
                                       boost::json::object params) {
  const boost::json::value id = next_request_id_++;
  awaiting_.emplace_back(id, call);
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

void AcpClient::on_message(Output& out, boost::json::object message, std::int64_t now_ms) {
  if (const auto* method = message.if_contains("method")) {
    if (!method->is_string()) {
      const bool is_request = message.contains("id");
      protocol_error(out, "a JSON-RPC method that is not a string", std::move(message));
      if (is_request)
        reply_error(out, nullptr, kInvalidRequest, "method must be a string");
    } else if (message.contains("id")) {
      on_agent_request(out, std::move(message), now_ms);
    } else {
      on_notification(out, message, now_ms);
    }
    return;
  }
  if (message.contains("id") && (message.contains("result") || message.contains("error"))) {
    on_response(out, std::move(message));
    return;
  }
  protocol_error(out, "not a JSON-RPC message: no method, result or error", std::move(message));
}

void AcpClient::on_response(Output& out, boost::json::object message) {
  const boost::json::value& id = message.at("id");
  // Exact JSON equality: the id 0 is not "0", nor 0.0.
  auto found = std::find_if(awaiting_.begin(), awaiting_.end(),
                            [&](const auto& entry) { return entry.first == id; });
  if (found == awaiting_.end()) {
    std::string detail = "a response to no request of ours: id " + boost::json::serialize(id);
    protocol_error(out, std::move(detail), std::move(message));
    return;
  }
  const Call call = found->second;
  awaiting_.erase(found);
  switch (call) {
    case Call::initialize:
      on_initialized(out, message);
      break;
    case Call::new_session:
      on_session_created(out, message);
      break;
    case Call::load_session:
      on_session_loaded(out, message);
      break;
    case Call::prompt:
      on_prompt_answered(out, message);
      break;
  }
}

void AcpClient::on_initialized(Output& out, const boost::json::object& message) {
  const auto* result = object_at(message, "result");
  if (!result) {
    fail_startup(out, "initialize failed: " + boost::json::serialize(value_at(message, "error")),
                 message);
    return;
  }
  const auto* version = result->if_contains("protocolVersion");
  if (version != nullptr && version->is_number() &&
      *version != boost::json::value(kProtocolVersion)) {
    fail_startup(out,
                 "the agent speaks ACP version " + boost::json::serialize(*version) +
                     ", this gateway version " + std::to_string(kProtocolVersion),
                 message);
    return;
  }
  if (const auto* capabilities = object_at(*result, "agentCapabilities")) {
    const auto* load = capabilities->if_contains("loadSession");
    load_session_ = load != nullptr && load->is_bool() && load->get_bool();
  }
  boost::json::object params{{"cwd", options().workspace_dir},
                             {"mcpServers", boost::json::array()}};
  if (!options().resume_session_id.empty()) {
    if (!load_session_) {
      fail_startup(out, "cannot resume: the agent does not offer session/load (loadSession)",
                   message);
      return;
    }
    params["sessionId"] = options().resume_session_id;
    loading_ = true;
    out.lines_to_agent.push_back(
        boost::json::serialize(request(Call::load_session, "session/load", std::move(params))));
    return;
  }
  out.lines_to_agent.push_back(
      boost::json::serialize(request(Call::new_session, "session/new", std::move(params))));
}

void AcpClient::on_session_loaded(Output& out, const boost::json::object& message) {
  loading_ = false;
  if (object_at(message, "result") == nullptr) {
    fail_startup(out, "session/load failed: " + boost::json::serialize(message), message);
    return;
  }
  set_agent_session_id(options().resume_session_id);
  mark_ready();
  emit(out, AgentEvent{std::string(event_types::resumed),
                       "resumed agent session " + options().resume_session_id,
                       {{"agent_session_id", options().resume_session_id}, {"raw", message}}});
}

void AcpClient::on_session_created(Output& out, const boost::json::object& message) {
  const auto* result = object_at(message, "result");
  const std::string_view session_id = result ? string_at(*result, "sessionId") : "";
  if (session_id.empty()) {
    fail_startup(out, "session/new failed: " + boost::json::serialize(message), message);
    return;
  }
  set_agent_session_id(std::string(session_id));
  mark_ready();
}

void AcpClient::on_prompt_answered(Output& out, const boost::json::object& message) {
  const auto* result = object_at(message, "result");
  if (!result) {
    // The turn is over all the same: the agent will not answer this prompt again.
    end_turn(out, "error", {{"error", value_at(message, "error")}}, message);
    return;
  }
  end_turn(out, std::string(string_at(*result, "stopReason", "unknown")),
           {{"usage", value_at(*result, "usage")}}, message);
}

void AcpClient::on_agent_request(Output& out, boost::json::object message, std::int64_t now_ms) {
  const boost::json::value id = message.at("id");
  if (!valid_request_id(id)) {
    protocol_error(out, "a request whose id is neither a string nor a number", message);
    reply_error(out, nullptr, kInvalidRequest, "id must be a string or a number");
    return;
  }
  const std::string_view method = message.at("method").get_string();
  if (method == "session/request_permission") {
    on_permission_request(out, message, now_ms);
    return;
  }
  reply_error(out, id, kMethodNotFound, "method not found: " + std::string(method));
}

void AcpClient::on_permission_request(Output& out, const boost::json::object& message,
                                      std::int64_t now_ms) {
  const auto* params = object_at(message, "params");
  const auto* tool_call = params ? object_at(*params, "toolCall") : nullptr;
  const auto* options = params ? array_at(*params, "options") : nullptr;
  PendingPermission request;
  request.agent_request_id = message.at("id");
  for (const auto& entry : options ? *options : boost::json::array()) {
    const auto* option = entry.if_object();
    if (option == nullptr || string_at(*option, "optionId").empty())
      continue;
    request.options.push_back({std::string(string_at(*option, "optionId")),
                               std::string(string_at(*option, "name")),
                               std::string(string_at(*option, "kind"))});
  }
  if (!tool_call || request.options.empty()) {
    protocol_error(out, "session/request_permission without a toolCall or options", message);
    reply_error(out, request.agent_request_id, kInvalidParams, "toolCall and options required");
    return;
  }
  request.tool_call = tool_call_summary(*tool_call);
  request_permission(out, std::move(request), *params, now_ms);
}

void AcpClient::on_notification(Output& out, const boost::json::object& message,
                                std::int64_t now_ms) {
  // Notifications we do not know need no answer and change nothing: ignored, as JSON-RPC asks.
  if (string_at(message, "method") != "session/update" || loading_)
    return;
  const auto* params = object_at(message, "params");
  const auto* update = params ? object_at(*params, "update") : nullptr;
  if (update == nullptr || string_at(*update, "sessionUpdate").empty()) {
    protocol_error(out, "session/update without an update", message);
    return;
  }
  on_session_update(out, *update, now_ms);
}

void AcpClient::on_session_update(Output& out, const boost::json::object& update,
                                  std::int64_t now_ms) {
  const std::string_view kind = string_at(update, "sessionUpdate");
  if (kind == "agent_message_chunk" || kind == "agent_thought_chunk") {
    const auto* content = object_at(update, "content");
    if (!content || string_at(*content, "type") != "text")
      return;  // images, audio and resources are not text the log can show
    // messageId is not in every ACP version: without it, AgentConnection makes one up.
    add_text(out, kind == "agent_message_chunk" ? TextKind::message : TextKind::thought,
             string_at(update, "messageId"), string_at(*content, "text"), update, now_ms);
  } else if (kind == "tool_call") {
    emit(out, tool_call_event(current_turn(), update));
  } else if (kind == "tool_call_update") {
    emit(out, tool_call_update_event(current_turn(), update));
  } else if (kind == "plan") {
    emit(out, plan_event(update));
  }
  // Other updates (user_message_chunk replays, available_commands_update, current_mode_update,
  // ...) say nothing the session log needs.
}

void AcpClient::reply_error(Output& out, boost::json::value id, int code, std::string_view text) {
  boost::json::object reply{
      {"jsonrpc", "2.0"}, {"id", std::move(id)}, {"error", {{"code", code}, {"message", text}}}};
  out.lines_to_agent.push_back(boost::json::serialize(reply));
}

}  // namespace tau::agent
