#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/clock.h"

namespace tau::test {

// A clock a test sets by hand, for code that takes a core::Clock. Copies of as_clock() share
// its time, so the code under test sees every change.
class ManualClock {
 public:
  explicit ManualClock(std::int64_t start_unix_ms = 1'700'000'000'000)
      : now_(std::make_shared<std::atomic<std::int64_t>>(start_unix_ms)) {}

  core::Clock as_clock() const {
    return [now = now_] { return now->load(); };
  }
  std::int64_t now() const { return now_->load(); }
  void set(std::int64_t now_unix_ms) { now_->store(now_unix_ms); }
  void advance(std::int64_t delta_ms) { now_->fetch_add(delta_ms); }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> now_;
};

}  // namespace tau::test
