#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"

namespace tau::auth {

struct RateDecision {
  bool allowed = true;
  std::int64_t retry_after_seconds = 0;  // set when refused: until the window ends, at least 1
};

// Fixed-window limit per principal: at most `max_requests` in each window aligned to multiples of
// `window_seconds` since the epoch. Thread-safe.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Counts a request of the principal and decides on it. May wait on the network when
  // `calls_block()` (a limit shared by several gateways).
  virtual RateDecision check(std::string_view principal_key) = 0;
  // Decides as check() does when that needs no wait on the network (a limit counted here, a
  // lease of a shared one at hand); nullopt, with nothing counted, when only check() can.
  virtual std::optional<RateDecision> try_check(std::string_view principal_key) {
    if (calls_block())
      return std::nullopt;
    return check(principal_key);
  }
  // Requests this process refused.
  virtual std::uint64_t rejected_requests() const = 0;
  virtual std::int64_t window_seconds() const = 0;
  virtual std::uint64_t max_requests() const = 0;
  virtual bool calls_block() const = 0;
};

// The limit of one gateway, counted in its memory.
class LocalRateLimiter final : public RateLimiter {
 public:
  LocalRateLimiter(std::int64_t window_seconds, std::uint64_t max_requests, core::Clock clock);

  RateDecision check(std::string_view principal_key) override;
  std::uint64_t rejected_requests() const override { return rejected_.load(); }
  std::int64_t window_seconds() const override { return window_ms_ / 1000; }
  std::uint64_t max_requests() const override { return max_requests_; }
  bool calls_block() const override { return false; }

 private:
  struct Window {
    std::int64_t start_unix_ms = 0;
    std::uint64_t count = 0;
  };

  const std::int64_t window_ms_;
  const std::uint64_t max_requests_;
  const core::Clock clock_;
  std::atomic<std::uint64_t> rejected_{0};

  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
  std::int64_t pruned_window_start_ = 0;
};

}  // namespace tau::auth
