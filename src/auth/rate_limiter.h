#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bridge/session_types.h"

namespace tau::auth {

struct RateDecision {
  bool allowed = true;
  std::int64_t retry_after_seconds = 0;  // set when refused: until the window ends, at least 1
};

// Fixed-window limit per principal: at most `max_requests` in each window aligned to multiples of
// `window_seconds` since the epoch. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(std::int64_t window_seconds, std::uint64_t max_requests, bridge::Clock clock);

  RateDecision check(std::string_view principal_key);
  std::uint64_t rejected_requests() const { return rejected_.load(); }
  std::int64_t window_seconds() const { return window_ms_ / 1000; }
  std::uint64_t max_requests() const { return max_requests_; }

 private:
  struct Window {
    std::int64_t start_unix_ms = 0;
    std::uint64_t count = 0;
  };

  const std::int64_t window_ms_;
  const std::uint64_t max_requests_;
  const bridge::Clock clock_;
  std::atomic<std::uint64_t> rejected_{0};

  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
  std::int64_t pruned_window_start_ = 0;
};

}  // namespace tau::auth
