#include "auth/rate_limiter.h"

#include <algorithm>
#include <utility>

namespace tau::auth {

LocalRateLimiter::LocalRateLimiter(std::int64_t window_seconds, std::uint64_t max_requests,
                                   core::Clock clock)
    : window_ms_(window_seconds * 1000),
      max_requests_(max_requests),
      clock_(clock ? std::move(clock) : core::Clock(core::system_clock_unix_ms)) {}

RateDecision LocalRateLimiter::check(std::string_view principal_key) {
  const std::int64_t now = clock_();
  const std::int64_t window_start = now - now % window_ms_;
  std::lock_guard lock(mutex_);
  // Once per window, forget principals whose window has passed, so the map stays bounded by the
  // principals seen in one window.
  if (window_start != pruned_window_start_) {
    std::erase_if(windows_, [window_start](const auto& entry) {
      return entry.second.start_unix_ms != window_start;
    });
    pruned_window_start_ = window_start;
  }
  Window& window = windows_[std::string(principal_key)];
  if (window.start_unix_ms != window_start)
    window = Window{window_start, 0};
  if (window.count >= max_requests_) {
    ++rejected_;
    const std::int64_t remaining_ms = window_start + window_ms_ - now;
    return RateDecision{false, std::max<std::int64_t>(1, (remaining_ms + 999) / 1000)};
  }
  ++window.count;
  return RateDecision{true, 0};
}

}  // namespace tau::auth
