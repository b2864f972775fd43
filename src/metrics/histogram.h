#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace tau::metrics {

// What a histogram held at one moment: Prometheus' cumulative buckets, sum and count.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;       // ascending; the implicit last bucket is +Inf
  std::vector<std::uint64_t> cumulative;  // one per bound, then the +Inf bucket (== count)
  double sum = 0;
};

// A fixed-bucket histogram that threads observe into without a lock (one relaxed atomic add per
// bucket hit), for latencies measured on hot paths.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  HistogramSnapshot snapshot() const;

  // Seconds, from 100 µs to 10 s: request and commit latencies on one machine.
  static std::vector<double> latency_seconds_bounds();

 private:
  const std::vector<double> upper_bounds_;
  const std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, then +Inf
  std::atomic<double> sum_{0};
};

}  // namespace tau::metrics
