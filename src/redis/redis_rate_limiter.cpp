#include "redis/redis_rate_limiter.h"

#include <algorithm>

#include "auth/authenticator.h"

namespace tau::redis {

RedisRateLimiter::RedisRateLimiter(std::shared_ptr<RedisScript> script, std::string prefix,
                                   std::int64_t window_seconds, std::uint64_t max_requests,
                                   core::Clock clock)
    : script_(std::move(script)),
      prefix_(std::move(prefix)),
      window_ms_(window_seconds * 1000),
      max_requests_(max_requests),
      clock_(std::move(clock)),
      lease_size_(lease_size_for(max_requests)) {}

std::uint64_t RedisRateLimiter::lease_size_for(std::uint64_t max_requests) {
  return std::clamp<std::uint64_t>(max_requests / 16, 1, 256);
}

auth::RateDecision RedisRateLimiter::refusal(std::int64_t window_start, std::int64_t now) {
  ++rejected_;
  const std::int64_t remaining_ms = window_start + window_ms_ - now;
  return auth::RateDecision{false, std::max<std::int64_t>(1, (remaining_ms + 999) / 1000)};
}

std::optional<auth::RateDecision> RedisRateLimiter::decide_locked(std::string_view principal_key,
                                                                  std::int64_t now) {
  const std::int64_t window_start = now - now % window_ms_;
  // Once per window, forget the leases of windows that passed (see LocalRateLimiter).
  if (window_start != pruned_window_start_) {
    std::erase_if(leases_, [window_start](const auto& entry) {
      return entry.second.window_start != window_start;
    });
    pruned_window_start_ = window_start;
  }
  const auto found = leases_.find(std::string(principal_key));
  if (found == leases_.end() || found->second.window_start != window_start)
    return std::nullopt;
  Lease& lease = found->second;
  // What is held is used first: another request's lease may have come after a refusal.
  if (lease.remaining > 0) {
    --lease.remaining;
    return auth::RateDecision{true, 0};
  }
  if (lease.refused)
    return refusal(window_start, now);
  return std::nullopt;
}

std::optional<auth::RateDecision> RedisRateLimiter::try_check(std::string_view principal_key) {
  std::lock_guard lock(mutex_);
  return decide_locked(principal_key, clock_());
}

auth::RateDecision RedisRateLimiter::check(std::string_view principal_key) {
  const std::int64_t now = clock_();
  {
    std::lock_guard lock(mutex_);
    if (auto decision = decide_locked(principal_key, now))
      return *decision;
  }
  // No lock held while Redis answers: two requests of one principal may both take a lease, and
  // the second lease only adds to the first.
  const Reply reply = script_->run("rate", prefix_, now,
                                   {auth::token_digest(principal_key), std::to_string(window_ms_),
                                    std::to_string(max_requests_), std::to_string(lease_size_)});
  if (reply.type != Reply::Type::array || reply.elements.size() != 2)
    throw std::runtime_error("unexpected reply from the Redis rate limit");
  const auto granted =
      static_cast<std::uint64_t>(std::max<long long>(0, reply.elements[1].integer));
  const std::int64_t window_start = now - now % window_ms_;
  std::lock_guard lock(mutex_);
  Lease& lease = leases_[std::string(principal_key)];
  if (lease.window_start != window_start)
    lease = Lease{window_start, 0, false};
  if (granted == 0) {
    lease.refused = true;
    if (lease.remaining == 0)
      return refusal(window_start, now);
    --lease.remaining;  // another request's lease came meanwhile
    return auth::RateDecision{true, 0};
  }
  // This request takes one of the lease; the rest wait here for the principal's next ones.
  lease.remaining += granted - 1;
  return auth::RateDecision{true, 0};
}

}  // namespace tau::redis
