#include "gateway/agent_profiles.h"

namespace tau::gateway {

std::string_view to_string(AgentProtocol protocol) {
  switch (protocol) {
    case AgentProtocol::acp:
      return "acp";
    case AgentProtocol::claude_stream_json:
      return "claude-stream-json";
    case AgentProtocol::lines:
      return "lines";
  }
  return "unknown";
}

std::optional<AgentProtocol> agent_protocol_from_string(std::string_view text) {
  for (auto protocol :
       {AgentProtocol::acp, AgentProtocol::claude_stream_json, AgentProtocol::lines}) {
    if (text == to_string(protocol))
      return protocol;
  }
  return std::nullopt;
}

std::string_view to_string(PermissionPolicy policy) {
  switch (policy) {
    case PermissionPolicy::ask:
      return "ask";
    case PermissionPolicy::allow:
      return "allow";
    case PermissionPolicy::deny:
      return "deny";
  }
  return "unknown";
}

std::optional<PermissionPolicy> permission_policy_from_string(std::string_view text) {
  for (auto policy : {PermissionPolicy::ask, PermissionPolicy::allow, PermissionPolicy::deny}) {
    if (text == to_string(policy))
      return policy;
  }
  return std::nullopt;
}

}  // namespace tau::gateway
