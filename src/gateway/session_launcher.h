#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "bridge/session_service.h"
#include "gateway/worker_supervisor.h"

namespace tau::gateway {

// What opening a session asks for.
struct LaunchRequest {
  std::string workspace_id;
  // Reserved for agent sessions, which start with an agent profile and a first prompt; the API
  // does not accept them yet, and launch() does not read them.
  std::optional<std::string> agent;
  std::optional<std::string> prompt;
};

struct LaunchResult {
  core::SessionSnapshot session;
  bool created = false;  // false when the workspace's running session was reused
  store::Ticket commit_ticket = 0;
};

// Starts sessions and their agents, and hands agents their follow-ups: the session service
// holds the session, the worker supervisor its process (in worker mode). Raises core::Error
// only: invalid_workspace_id, worker_failed, and whatever the session service raises.
class SessionLauncher {
 public:
  SessionLauncher(bridge::SessionService& pool, WorkerSupervisor& workers)
      : pool_(pool), workers_(workers) {}

  // Returns the workspace's running session, or opens one and, in worker mode, starts its
  // worker; a worker that cannot start leaves no session behind (worker_failed). In worker mode
  // the workspace id names a directory, so it must be `[A-Za-z0-9._-]{1,128}` (after trimming),
  // not . or .. (invalid_workspace_id).
  LaunchResult launch(const LaunchRequest& request);

  // Queues a follow-up on the session and, in worker mode, delivers it to the worker: directly,
  // or, when the session service routes follow-ups (the worker may run on another gateway),
  // through the service, whose delivery failures are recorded on the session rather than raised.
  // A direct delivery that fails fails the session and raises worker_failed.
  bridge::AppendResult deliver_followup(std::string_view session_id, std::string_view message);

 private:
  bridge::SessionService& pool_;
  WorkerSupervisor& workers_;
};

}  // namespace tau::gateway
