#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bridge/session_service.h"

namespace tau::test {

// The inactivity timeout of test_pool_limits().
inline constexpr std::int64_t kPoolTimeoutMs = 1'000;

// Small limits, so tests reach them: 4 active sessions, 100 events each.
inline bridge::PoolLimits test_pool_limits() {
  bridge::PoolLimits limits;
  limits.inactivity_timeout_ms = kPoolTimeoutMs;
  limits.max_active_sessions = 4;
  limits.max_events_per_session = 100;
  return limits;
}

// Hands out "session-1", "session-2", ... and counts how often it was asked.
class SequentialIds {
 public:
  std::function<std::string()> as_generator() const {
    return [calls = calls_] { return "session-" + std::to_string(++*calls); };
  }
  int calls() const { return calls_->load(); }

 private:
  std::shared_ptr<std::atomic<int>> calls_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace tau::test
