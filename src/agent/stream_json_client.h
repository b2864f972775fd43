#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/agent_connection.h"

namespace tau::agent {

// Claude Code run as `claude -p --input-format stream-json --output-format stream-json
// --verbose --permission-prompt-tool stdio`: one JSON object per line each way. Each prompt is
// one `user` line; the agent answers with `system`, `assistant`, `user` (tool results) lines and
// ends the turn with a `result` line. Requests for permission come as `control_request` lines
// (subtype can_use_tool) and are answered with `control_response` lines; a cancel is a
// `control_request` of ours (subtype interrupt).
//
// The format is Claude Code's, documented only in part (its Agent SDKs speak it); where this
// client relies on a shape the SDKs show but no document promises, a comment says so.
// There is no handshake: the connection is idle at start(). `stream_event` lines (partial
// messages) are ignored: the complete `assistant` lines carry the same text.
class StreamJsonClient : public AgentConnection {
 public:
  // The choices a can_use_tool request is offered as: Claude Code itself offers none, it only
  // takes allow (with the tool's input) or deny (with a message for the model).
  static constexpr std::string_view kAllowOption = "allow";
  static constexpr std::string_view kDenyOption = "deny";

  explicit StreamJsonClient(AgentOptions options) : AgentConnection(std::move(options)) {}

  std::string_view protocol() const override { return "claude_stream_json"; }
  Output start(std::int64_t now_ms) override;
  Output on_line(std::string_view line, std::int64_t now_ms) override;

 protected:
  boost::json::object prompt_message(const std::string& text) override;
  std::vector<boost::json::object> cancel_messages() override;
  boost::json::object permission_reply(const PendingPermission& request,
                                       const PermissionOption* chosen,
                                       std::string_view reason) override;

 private:
  void on_message(Output& out, const boost::json::object& message, std::int64_t now_ms);
  void on_assistant(Output& out, const boost::json::object& message, std::int64_t now_ms);
  void on_tool_results(Output& out, const boost::json::object& message);
  void on_result(Output& out, const boost::json::object& message);
  void on_control_request(Output& out, const boost::json::object& message, std::int64_t now_ms);
  void on_control_response(Output& out, const boost::json::object& message);

  std::uint64_t control_requests_sent_ = 0;
  bool interrupted_ = false;  // an interrupt was sent in the current turn
  std::vector<std::string> awaiting_control_responses_;  // request_ids of our control requests
};

}  // namespace tau::agent
