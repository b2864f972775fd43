#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "bridge/session_service.h"
#include "gateway/agent_sessions.h"
#include "gateway/worker_supervisor.h"

namespace tau::gateway {

// What opening a session asks for.
struct LaunchRequest {
  std::string workspace_id;
  // The agent profile to run (none: the default agent, if there is one).
  std::optional<std::string> agent;
  // Queued as the session's first follow-up (or, on a reused session, its next one).
  std::optional<std::string> prompt;
};

struct LaunchResult {
  core::SessionSnapshot session;
  bool created = false;  // false when the workspace's running session was reused
  store::Ticket commit_ticket = 0;
};

// Starts sessions and their agents, and hands agents their follow-ups: the session service
// holds the session; the worker supervisor runs agents of protocol `lines` (worker mode), agent
// sessions those of acp and claude-stream-json. Raises core::Error only: unknown_agent,
// invalid_workspace_id, invalid_message, worker_failed, and whatever the session service raises.
class SessionLauncher {
 public:
  SessionLauncher(bridge::SessionService& pool, const AgentSettings& profiles,
                  WorkerSupervisor& workers, AgentSessions& agents)
      : pool_(pool), profiles_(profiles), workers_(workers), agents_(agents) {}

  // Returns the workspace's running session, or opens one and starts its agent (the profile the
  // request names, else the default agent; none when there is neither); an agent that cannot
  // start leaves no session behind (worker_failed). With an agent the workspace id names a
  // directory, so it must be `[A-Za-z0-9._-]{1,128}` (after trimming), not . or ..
  // (invalid_workspace_id). A prompt is queued as a follow-up.
  LaunchResult launch(const LaunchRequest& request);

  // Queues a follow-up on the session. An agent session takes it as a turn when its agent is
  // ready; a worker (protocol lines) gets it on its stdin: directly, or, when the session service
  // routes follow-ups (the worker may run on another gateway), through the service, whose
  // delivery failures are recorded on the session rather than raised. A direct delivery that
  // fails fails the session and raises worker_failed.
  bridge::AppendResult deliver_followup(std::string_view session_id, std::string_view message);
  // A follow-up the session service routed to this gateway, for the agent running here.
  void deliver_routed_followup(const std::string& session_id, const std::string& message);

 private:
  // The profile a new session runs; nullptr for a session without an agent.
  const AgentProfile* profile_for(const std::optional<std::string>& requested) const;

  bridge::SessionService& pool_;
  const AgentSettings& profiles_;
  WorkerSupervisor& workers_;
  AgentSessions& agents_;
};

}  // namespace tau::gateway
