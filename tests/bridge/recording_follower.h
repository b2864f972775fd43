#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "bridge/session_service.h"

namespace tau::test {

// A follower that records what its pool tells it, as a stream would before waking its writer,
// and that a test can wait on. Thread-safe: RedisSessionPool tells it from its feed's thread.
class RecordingFollower : public bridge::SessionFollower {
 public:
  void notify(std::uint64_t encoded_bytes_total) override {
    std::lock_guard lock(mutex_);
    ++notifications_;
    last_total_ = encoded_bytes_total;
    changed_.notify_all();
  }
  int notifications() const {
    std::lock_guard lock(mutex_);
    return notifications_;
  }
  std::uint64_t last_total() const {
    std::lock_guard lock(mutex_);
    return last_total_;
  }

  // Waits until `condition` holds, re-checking after every notification (and every 50 ms, in
  // case one came before the check); false if it still does not hold after 20 s (a hang). The
  // condition runs without this follower's lock held, as a pool calls notify() with its own
  // lock held.
  bool wait_until(const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (true) {
      int seen = 0;
      {
        std::lock_guard lock(mutex_);
        seen = notifications_;
      }
      if (condition())
        return true;
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::milliseconds(50),
                        [&] { return notifications_ != seen; });
    }
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int notifications_ = 0;
  std::uint64_t last_total_ = 0;
};

}  // namespace tau::test
