#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "auth/rate_limiter.h"
#include "redis/redis_script.h"

namespace tau::redis {

// The rate limit counted in Redis, so a principal's budget is one across every gateway. Keys
// name a digest of the principal, never a credential; each window's counter expires by itself.
//
// A gateway takes a principal's requests from Redis in leases of up to `lease_size()` at a time
// and counts them down here, so most requests never wait on Redis. A lease is part of the
// window's budget, taken atomically, so every gateway together never admits more than the limit
// in a window; but a gateway's unused lease is not lent to the others, so a principal can be
// refused on one gateway while the others hold at most (gateways - 1) x (lease - 1) requests
// it did not use. A refusal is remembered until the window ends (the count cannot fall).
// When Redis cannot be reached, check() throws core::Error(store_unavailable).
class RedisRateLimiter final : public auth::RateLimiter {
 public:
  RedisRateLimiter(std::shared_ptr<RedisScript> script, std::string prefix,
                   std::int64_t window_seconds, std::uint64_t max_requests, core::Clock clock);

  // A sixteenth of the limit, at least 1 and at most 256: with the default 120 a minute, 7.
  static std::uint64_t lease_size_for(std::uint64_t max_requests);
  std::uint64_t lease_size() const { return lease_size_; }

  auth::RateDecision check(std::string_view principal_key) override;
  std::optional<auth::RateDecision> try_check(std::string_view principal_key) override;
  std::uint64_t rejected_requests() const override { return rejected_.load(); }
  std::int64_t window_seconds() const override { return window_ms_ / 1000; }
  std::uint64_t max_requests() const override { return max_requests_; }
  bool calls_block() const override { return true; }

 private:
  // What this gateway holds of a principal's budget in one window.
  struct Lease {
    std::int64_t window_start = 0;
    std::uint64_t remaining = 0;  // requests taken from Redis and not used yet
    bool refused = false;         // Redis had nothing left in this window
  };
  // Decides from the lease; nullopt when a new one must be taken. Under mutex_.
  std::optional<auth::RateDecision> decide_locked(std::string_view principal_key, std::int64_t now);
  auth::RateDecision refusal(std::int64_t window_start, std::int64_t now);

  const std::shared_ptr<RedisScript> script_;
  const std::string prefix_;
  const std::int64_t window_ms_;
  const std::uint64_t max_requests_;
  const core::Clock clock_;
  const std::uint64_t lease_size_;
  std::atomic<std::uint64_t> rejected_{0};

  std::mutex mutex_;
  std::unordered_map<std::string, Lease> leases_;
  std::int64_t pruned_window_start_ = 0;
};

}  // namespace tau::redis
