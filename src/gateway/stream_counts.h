#pragma once

#include <atomic>
#include <cstdint>

namespace tau::gateway {

// The stream responses open now, for the follow-stream limit, the status page and the metrics.
struct StreamCounts {
  std::atomic<std::uint64_t> open{0};    // every open stream response
  std::atomic<std::uint64_t> follow{0};  // the follow ones, limited by --max-streams
};

// Counts a stream for as long as it is open.
class StreamSlot {
 public:
  explicit StreamSlot(std::atomic<std::uint64_t>& counter) : counter_(counter), count_(++counter) {}
  ~StreamSlot() { --counter_; }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;
  // The number of open streams including this one, when it was opened.
  std::uint64_t count() const { return count_; }

 private:
  std::atomic<std::uint64_t>& counter_;
  std::uint64_t count_;
};

}  // namespace tau::gateway
