#pragma once

#include <boost/json/object.hpp>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_service.h"
#include "gateway/agent_sessions.h"
#include "gateway/stream_counts.h"
#include "gateway/worker_supervisor.h"

namespace tau::gateway {

// GET /gateway/status: the auth mode and its counters, the API's endpoints, and the runtime
// (sessions, streams, worker mode, store), which the reap answer also carries.
class StatusPage {
 public:
  StatusPage(bridge::SessionService& pool, auth::Authenticator& authenticator,
             auth::RateLimiter& rate_limiter, const WorkerSupervisor& workers,
             const AgentSessions& agents, const StreamCounts& streams)
      : pool_(pool),
        authenticator_(authenticator),
        rate_limiter_(rate_limiter),
        workers_(workers),
        agents_(agents),
        streams_(streams) {}

  boost::json::object render() const;
  // The `runtime` object: the pool's `runtime` with the open streams, the workers and the store.
  boost::json::object runtime_json(const bridge::RuntimeInfo& runtime) const;

 private:
  boost::json::object auth_json() const;
  boost::json::object store_json() const;

  bridge::SessionService& pool_;
  auth::Authenticator& authenticator_;
  auth::RateLimiter& rate_limiter_;
  const WorkerSupervisor& workers_;
  const AgentSessions& agents_;
  const StreamCounts& streams_;
};

}  // namespace tau::gateway
