#include "agent/agent_connection.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>
#include <utility>

#include "core/text.h"

namespace tau::agent {
namespace {

bool is_allow(const PermissionOption& option) {
  return option.kind == "allow_once" || option.kind == "allow_always";
}

bool is_reject(const PermissionOption& option) {
  return option.kind == "reject_once" || option.kind == "reject_always";
}

boost::json::array options_json(const std::vector<PermissionOption>& options) {
  boost::json::array list;
  for (const auto& option : options)
    list.push_back({{"option_id", option.option_id}, {"name", option.name}, {"kind", option.kind}});
  return list;
}

std::string_view outcome_name(bool selected, bool timed_out) {
  if (selected)
    return "selected";
  return timed_out ? "timed_out" : "cancelled";
}

}  // namespace

Output AgentConnection::prompt(const std::string& text, std::int64_t /*now_ms*/) {
  if (state() != AgentState::idle)
    throw std::logic_error("prompt() while the agent is " + std::string(to_string(state())));
  Output out;
  ++turn_;
  turn_active_ = true;
  boost::json::object sent = prompt_message(text);
  out.lines_to_agent.push_back(boost::json::serialize(sent));
  AgentEvent started{std::string(event_types::turn_started),
                     "turn " + std::to_string(turn_) + ": " + summarize(text),
                     {{"turn", turn_}, {"prompt", text}, {"raw", std::move(sent)}}};
  emit(out, std::move(started));
  return out;
}

Output AgentConnection::cancel(std::int64_t /*now_ms*/) {
  Output out;
  if (!turn_active_ || exited_)
    return out;
  // The agent must hear "cancelled" for every request it waits on (ACP requires it before the
  // turn can end with stopReason cancelled).
  std::vector<PendingPermission> pending = std::move(pending_);
  pending_.clear();
  for (auto& request : pending)
    resolve(out, std::move(request), Outcome::cancelled, nullptr, "api");
  for (auto& message : cancel_messages())
    out.lines_to_agent.push_back(boost::json::serialize(message));
  return out;
}

PermissionAnswer AgentConnection::answer_permission(std::string_view request_id,
                                                    std::string_view option_id,
                                                    std::int64_t /*now_ms*/) {
  PermissionAnswer answer;
  auto found = std::find_if(pending_.begin(), pending_.end(),
                            [&](const auto& request) { return request.request_id == request_id; });
  if (found == pending_.end()) {
    answer.status = resolved_ids_.contains(std::string(request_id)) ? AnswerStatus::already_resolved
                                                                    : AnswerStatus::not_found;
    return answer;
  }
  auto option = std::find_if(found->options.begin(), found->options.end(),
                             [&](const auto& offered) { return offered.option_id == option_id; });
  if (option == found->options.end()) {
    answer.status = AnswerStatus::invalid_option;
    return answer;
  }
  PendingPermission request = std::move(*found);
  pending_.erase(found);
  const PermissionOption chosen =
      *std::find_if(request.options.begin(), request.options.end(),
                    [&](const auto& offered) { return offered.option_id == option_id; });
  resolve(answer.output, std::move(request), Outcome::selected, &chosen, "api");
  return answer;
}

Output AgentConnection::expire_permissions(std::int64_t now_ms) {
  Output out;
  auto expired = std::stable_partition(pending_.begin(), pending_.end(), [&](const auto& request) {
    return request.deadline_ms > now_ms;
  });
  std::vector<PendingPermission> due(std::make_move_iterator(expired),
                                     std::make_move_iterator(pending_.end()));
  pending_.erase(expired, pending_.end());
  for (auto& request : due)
    resolve(out, std::move(request), Outcome::timed_out, nullptr, "timeout");
  return out;
}

Output AgentConnection::poll(std::int64_t now_ms) {
  Output out;
  const auto due = text_.due_ms();
  if (due && *due <= now_ms)
    flush_text(out);
  return out;
}

Output AgentConnection::on_exit(std::int64_t /*now_ms*/) {
  Output out;
  flush_text(out);
  exited_ = true;
  // Nobody is left to answer: each request is logged as cancelled (its reply goes nowhere), and
  // later answers are told it is resolved.
  std::vector<PendingPermission> pending = std::move(pending_);
  pending_.clear();
  for (auto& request : pending)
    resolve(out, std::move(request), Outcome::cancelled, nullptr, "exit");
  out.lines_to_agent.clear();
  return out;
}

Output AgentConnection::report_protocol_error(std::string detail) {
  Output out;
  protocol_error(out, std::move(detail));
  return out;
}

std::optional<std::int64_t> AgentConnection::next_permission_deadline_ms() const {
  std::optional<std::int64_t> earliest;
  for (const auto& request : pending_) {
    if (!earliest || request.deadline_ms < *earliest)
      earliest = request.deadline_ms;
  }
  return earliest;
}

std::optional<std::int64_t> AgentConnection::startup_deadline_ms() const {
  if (state() != AgentState::starting || !started_)
    return std::nullopt;
  return started_ms_ + options_.startup_timeout_ms;
}

bool AgentConnection::startup_deadline_passed(std::int64_t now_ms) const {
  if (state() != AgentState::starting || !started_)
    return false;
  return !startup_failure_.empty() || now_ms - started_ms_ >= options_.startup_timeout_ms;
}

AgentState AgentConnection::state() const {
  if (exited_)
    return AgentState::exited;
  if (!ready_)
    return AgentState::starting;
  if (!pending_.empty())
    return AgentState::awaiting_permission;
  return turn_active_ ? AgentState::prompting : AgentState::idle;
}

boost::json::object AgentConnection::snapshot(std::string_view name) const {
  boost::json::array pending;
  for (const auto& request : pending_) {
    pending.push_back({{"request_id", request.request_id},
                       {"tool_call", request.tool_call},
                       {"options", options_json(request.options)}});
  }
  boost::json::value stop_reason = nullptr;
  if (!last_stop_reason_.empty())
    stop_reason = last_stop_reason_;
  return {{"name", name},
          {"protocol", protocol()},
          {"state", to_string(state())},
          {"turns_completed", turns_completed_},
          {"pending_permissions", std::move(pending)},
          {"last_stop_reason", std::move(stop_reason)}};
}

void AgentConnection::mark_started(std::int64_t now_ms) {
  started_ = true;
  started_ms_ = now_ms;
}

void AgentConnection::fail_startup(Output& out, std::string detail, boost::json::value raw) {
  startup_failure_ = detail;
  protocol_error(out, std::move(detail), std::move(raw));
}

void AgentConnection::emit(Output& out, AgentEvent event) {
  flush_text(out);
  open_message_id_.clear();
  out.events.push_back(std::move(event));
}

void AgentConnection::add_text(Output& out, TextKind kind, std::string_view message_id,
                               std::string_view text, boost::json::value raw, std::int64_t now_ms) {
  std::string id(message_id);
  if (kind == TextKind::thought) {
    open_message_id_.clear();  // a thought ends the agent message in progress
  } else if (id.empty()) {
    if (open_message_id_.empty())
      open_message_id_ = std::to_string(turn_) + "-" + std::to_string(++made_up_messages_);
    id = open_message_id_;
  }
  if (!text_.continues(kind, turn_, id))
    flush_text(out);
  text_.append(kind, turn_, id, text, std::move(raw), now_ms);
  if (*text_.due_ms() <= now_ms)
    flush_text(out);
}

void AgentConnection::end_turn(Output& out, const std::string& stop_reason,
                               boost::json::object details, boost::json::value raw) {
  turn_active_ = false;
  ++turns_completed_;
  last_stop_reason_ = stop_reason;
  AgentEvent ended{std::string(event_types::turn_ended),
                   "turn " + std::to_string(turn_) + " ended: " + stop_reason, std::move(details)};
  ended.data["turn"] = turn_;
  ended.data["stop_reason"] = stop_reason;
  if (!ended.data.contains("usage"))
    ended.data["usage"] = nullptr;
  ended.data["raw"] = std::move(raw);
  emit(out, std::move(ended));
}

void AgentConnection::protocol_error(Output& out, std::string detail, boost::json::value raw) {
  AgentEvent error{std::string(event_types::protocol_error),
                   "protocol error: " + detail,
                   {{"detail", detail}, {"raw", std::move(raw)}}};
  emit(out, std::move(error));
}

std::optional<boost::json::object> AgentConnection::parse_line(Output& out, std::string_view line,
                                                               std::string_view what) {
  const std::string_view trimmed = core::trim_ascii_whitespace(line);
  if (trimmed.empty())
    return std::nullopt;  // a blank line carries no message
  boost::system::error_code error;
  boost::json::value parsed = boost::json::parse(trimmed, error);
  if (error) {
    protocol_error(out, "not JSON: " + error.message(), boost::json::string(summarize(trimmed)));
    return std::nullopt;
  }
  if (!parsed.is_object()) {
    protocol_error(out, "not a " + std::string(what) + ": not a JSON object", std::move(parsed));
    return std::nullopt;
  }
  return std::move(parsed.get_object());
}

void AgentConnection::request_permission(Output& out, PendingPermission request,
                                         boost::json::value raw, std::int64_t now_ms) {
  request.request_id = "perm-" + std::to_string(++permission_requests_);
  request.deadline_ms = now_ms + options_.permission_timeout_ms;
  const auto* title = request.tool_call.if_contains("title");
  std::string summary = "permission requested";
  if (title && title->is_string())
    summary += ": " + summarize(title->get_string());
  AgentEvent asked{std::string(event_types::permission_requested),
                   std::move(summary),
                   {{"request_id", request.request_id},
                    {"tool_call", request.tool_call},
                    {"options", options_json(request.options)},
                    {"raw", std::move(raw)}}};
  emit(out, std::move(asked));
  if (options_.permission == PermissionPolicy::ask) {
    pending_.push_back(std::move(request));
    return;
  }
  const PermissionOption* chosen = policy_choice(request);
  const PermissionOption copy = chosen ? *chosen : PermissionOption{};
  resolve(out, std::move(request), chosen ? Outcome::selected : Outcome::cancelled,
          chosen ? &copy : nullptr, "policy");
}

void AgentConnection::withdraw_permission(Output& out, const boost::json::value& agent_request_id) {
  auto found = std::find_if(pending_.begin(), pending_.end(), [&](const auto& request) {
    return request.agent_request_id == agent_request_id;
  });
  if (found == pending_.end())
    return;
  resolved_ids_.insert(found->request_id);
  AgentEvent withdrawn{std::string(event_types::permission_resolved),
                       "permission request " + found->request_id + " withdrawn by the agent",
                       {{"request_id", found->request_id},
                        {"outcome", "cancelled"},
                        {"option_id", nullptr},
                        {"by", "agent"},
                        {"raw", nullptr}}};
  pending_.erase(found);
  emit(out, std::move(withdrawn));
}

void AgentConnection::flush_text(Output& out) {
  if (auto event = text_.take())
    out.events.push_back(std::move(*event));
}

void AgentConnection::resolve(Output& out, PendingPermission request, Outcome outcome,
                              const PermissionOption* chosen, std::string_view by) {
  const bool timed_out = outcome == Outcome::timed_out;
  std::string_view reason = "the turn was cancelled";
  if (timed_out)
    reason = "the request for permission timed out";
  else if (by == "policy")
    reason = "denied by the gateway's permission policy";
  else if (chosen)
    reason = "rejected by the gateway's client";
  boost::json::object reply = permission_reply(request, chosen, reason);
  out.lines_to_agent.push_back(boost::json::serialize(reply));
  resolved_ids_.insert(request.request_id);
  const std::string_view outcome_text = outcome_name(chosen != nullptr, timed_out);
  boost::json::value option_id = nullptr;
  if (chosen)
    option_id = chosen->option_id;
  AgentEvent resolved{std::string(event_types::permission_resolved),
                      "permission " + request.request_id + " " + std::string(outcome_text) +
                          (chosen ? " " + chosen->option_id : std::string()) + " by " +
                          std::string(by),
                      {{"request_id", request.request_id},
                       {"outcome", outcome_text},
                       {"option_id", std::move(option_id)},
                       {"by", by},
                       {"raw", std::move(reply)}}};
  emit(out, std::move(resolved));
}

const PermissionOption* AgentConnection::policy_choice(const PendingPermission& request) const {
  const bool allow = options_.permission == PermissionPolicy::allow;
  for (const auto& option : request.options) {
    if (allow ? is_allow(option) : is_reject(option))
      return &option;
  }
  return nullptr;
}

}  // namespace tau::agent
