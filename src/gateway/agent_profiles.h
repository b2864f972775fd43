#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tau::gateway {

// How the gateway speaks with an agent's process:
//   acp                 the Agent Client Protocol (JSON-RPC over stdio)
//   claude_stream_json  Claude Code's `--input-format stream-json --output-format stream-json`
//   lines               one event per output line, one input line per follow-up (worker mode)
enum class AgentProtocol { acp, claude_stream_json, lines };
std::string_view to_string(AgentProtocol protocol);  // as the config file spells it
std::optional<AgentProtocol> agent_protocol_from_string(std::string_view text);

// What happens to an agent's request for permission (to edit a file, run a command): asked of
// the client, or answered at once.
enum class PermissionPolicy { ask, allow, deny };
std::string_view to_string(PermissionPolicy policy);
std::optional<PermissionPolicy> permission_policy_from_string(std::string_view text);

// One agent the gateway can start for a session, from a `[agents.NAME]` table of the config
// file, or `default` from --worker-command, --worker-arg and --worker-env.
struct AgentProfile {
  std::string name;
  AgentProtocol protocol = AgentProtocol::lines;
  std::string command;  // a path or a name in PATH; no shell
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the agent's environment
  PermissionPolicy permission = PermissionPolicy::ask;
  std::int64_t permission_timeout_ms = 600000;  // an unanswered request is rejected after this
  // acp, claude-stream-json: from the start until the agent is ready for a first prompt
  std::int64_t startup_timeout_ms = 30000;
  std::uint64_t max_events = 0;  // events kept per session
};

// Events kept per agent session unless its profile says otherwise: at least this many for
// acp and claude-stream-json (which emit many small events), --max-events-per-session for lines.
inline constexpr std::uint64_t kAgentSessionMinEvents = 10000;
inline constexpr std::int64_t kMaxPermissionTimeoutMs = 86400000;

struct AgentSettings {
  // The profile used when a session names none; empty when there are no profiles, or several
  // and the file names none of them.
  std::string default_agent;
  std::vector<AgentProfile> profiles;  // by name

  bool has_protocol(AgentProtocol protocol) const {
    for (const auto& profile : profiles) {
      if (profile.protocol == protocol)
        return true;
    }
    return false;
  }

  const AgentProfile* find(std::string_view name) const {
    for (const auto& profile : profiles) {
      if (profile.name == name)
        return &profile;
    }
    return nullptr;
  }
};

}  // namespace tau::gateway
