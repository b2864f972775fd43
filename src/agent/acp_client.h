#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/agent_connection.h"

namespace tau::agent {

// The client side of the Agent Client Protocol (https://agentclientprotocol.com, protocol
// version 1): JSON-RPC 2.0, one message per line. start() sends `initialize`; its result brings
// `session/new` in the workspace; its result makes the connection idle. Each prompt is a
// `session/prompt` request whose response (stopReason) ends the turn; `session/update`
// notifications in between become typed events. The agent's own requests may come at any time,
// also while ours are pending: `session/request_permission` is answered through the permission
// rules of AgentConnection, anything else with -32601 (this client offers no fs or terminal
// methods, and says so in initialize).
class AcpClient : public AgentConnection {
 public:
  static constexpr int kProtocolVersion = 1;

  explicit AcpClient(AgentOptions options) : AgentConnection(std::move(options)) {}

  std::string_view protocol() const override { return "acp"; }
  Output start(std::int64_t now_ms) override;
  Output on_line(std::string_view line, std::int64_t now_ms) override;

  // The agent's initialize result said agentCapabilities.loadSession: true (session/load works).
  bool supports_load_session() const override { return load_session_; }

 protected:
  boost::json::object prompt_message(const std::string& text) override;
  std::vector<boost::json::object> cancel_messages() override;
  boost::json::object permission_reply(const PendingPermission& request,
                                       const PermissionOption* chosen,
                                       std::string_view reason) override;

 private:
  enum class Call { initialize, new_session, load_session, prompt };
  // A request of ours, with a fresh id remembered until its response comes.
  boost::json::object request(Call call, std::string_view method, boost::json::object params);
  void on_message(Output& out, boost::json::object message, std::int64_t now_ms);
  void on_response(Output& out, boost::json::object message);
  void on_agent_request(Output& out, boost::json::object message, std::int64_t now_ms);
  void on_notification(Output& out, const boost::json::object& message, std::int64_t now_ms);
  void on_session_update(Output& out, const boost::json::object& update, std::int64_t now_ms);
  void on_initialized(Output& out, const boost::json::object& message);
  void on_session_created(Output& out, const boost::json::object& message);
  void on_session_loaded(Output& out, const boost::json::object& message);
  void on_prompt_answered(Output& out, const boost::json::object& message);
  void on_permission_request(Output& out, const boost::json::object& message, std::int64_t now_ms);
  void reply_error(Output& out, boost::json::value id, int code, std::string_view text);

  std::int64_t next_request_id_ = 0;
  std::vector<std::pair<boost::json::value, Call>> awaiting_;  // our requests, by JSON id
  bool load_session_ = false;
  bool loading_ = false;  // session/load replays the conversation: not logged a second time
};

}  // namespace tau::agent
