#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "auth/rate_limiter.h"
#include "redis/redis_script.h"

namespace tau::redis {

// The rate limit counted in Redis, so a principal's budget is one across every gateway. Keys
// name a digest of the principal, never a credential; each window's counter expires by itself.
// When Redis cannot be reached, check() throws core::Error(store_unavailable).
class RedisRateLimiter final : public auth::RateLimiter {
 public:
  RedisRateLimiter(std::shared_ptr<RedisScript> script, std::string prefix,
                   std::int64_t window_seconds, std::uint64_t max_requests, core::Clock clock);

  auth::RateDecision check(std::string_view principal_key) override;
  std::uint64_t rejected_requests() const override { return rejected_.load(); }
  std::int64_t window_seconds() const override { return window_ms_ / 1000; }
  std::uint64_t max_requests() const override { return max_requests_; }
  bool calls_block() const override { return true; }

 private:
  const std::shared_ptr<RedisScript> script_;
  const std::string prefix_;
  const std::int64_t window_ms_;
  const std::uint64_t max_requests_;
  const core::Clock clock_;
  std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace tau::redis
