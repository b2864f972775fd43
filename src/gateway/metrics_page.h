#pragma once

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_service.h"
#include "gateway/stream_counts.h"
#include "gateway/worker_supervisor.h"
#include "metrics/exposition.h"

namespace tau::gateway {

// The gateway's own families of the Prometheus exposition (GET /metrics), after the request
// metrics: sessions by status, open streams, what the pool, authentication, the rate limit and
// the workers have done, and the store's commits.
class MetricsPage {
 public:
  MetricsPage(bridge::SessionService& pool, auth::Authenticator& authenticator,
              auth::RateLimiter& rate_limiter, const WorkerSupervisor& workers,
              const StreamCounts& streams)
      : pool_(pool),
        authenticator_(authenticator),
        rate_limiter_(rate_limiter),
        workers_(workers),
        streams_(streams) {}

  void write(metrics::Exposition& out) const;

 private:
  static void write_sessions(metrics::Exposition& out, const bridge::PoolCounters& pool);
  void write_streams(metrics::Exposition& out) const;
  static void write_pool_counters(metrics::Exposition& out, const bridge::PoolCounters& pool);
  void write_refusals(metrics::Exposition& out) const;
  void write_workers(metrics::Exposition& out) const;
  void write_store(metrics::Exposition& out) const;

  bridge::SessionService& pool_;
  auth::Authenticator& authenticator_;
  auth::RateLimiter& rate_limiter_;
  const WorkerSupervisor& workers_;
  const StreamCounts& streams_;
};

}  // namespace tau::gateway
