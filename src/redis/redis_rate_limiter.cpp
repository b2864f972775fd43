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
      clock_(std::move(clock)) {}

auth::RateDecision RedisRateLimiter::check(std::string_view principal_key) {
  const Reply reply = script_->run("rate", prefix_, clock_(),
                                   {auth::token_digest(principal_key), std::to_string(window_ms_),
                                    std::to_string(max_requests_)});
  if (reply.type != Reply::Type::array || reply.elements.size() != 3)
    throw std::runtime_error("unexpected reply from the Redis rate limit");
  if (reply.elements[1].integer == 1)
    return auth::RateDecision{true, 0};
  ++rejected_;
  const std::int64_t remaining_ms = reply.elements[2].integer;
  return auth::RateDecision{false, std::max<std::int64_t>(1, (remaining_ms + 999) / 1000)};
}

}  // namespace tau::redis
