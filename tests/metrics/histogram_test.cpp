#include "metrics/histogram.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace tau::metrics {
namespace {

TEST(Histogram, CountsEachObservationInTheFirstBucketThatHoldsIt) {
  Histogram histogram({0.1, 1, 10});
  for (double value : {0.05, 0.1, 0.5, 1.0, 7.0, 11.0, 500.0})
    histogram.observe(value);
  const HistogramSnapshot snapshot = histogram.snapshot();
  EXPECT_EQ(snapshot.upper_bounds, (std::vector<double>{0.1, 1, 10}));
  // Cumulative: le=0.1 holds 0.05 and 0.1 (bounds are inclusive), le=+Inf holds everything.
  EXPECT_EQ(snapshot.cumulative, (std::vector<std::uint64_t>{2, 4, 5, 7}));
  EXPECT_DOUBLE_EQ(snapshot.sum, 0.05 + 0.1 + 0.5 + 1.0 + 7.0 + 11.0 + 500.0);
}

TEST(Histogram, LosesNoObservationFromConcurrentThreads) {
  Histogram histogram(Histogram::latency_seconds_bounds());
  constexpr int kThreads = 4;
  constexpr int kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram] {
      for (int i = 0; i < kEach; ++i)
        histogram.observe(0.001);
    });
  }
  for (auto& thread : threads)
    thread.join();
  const auto snapshot = histogram.snapshot();
  EXPECT_EQ(snapshot.cumulative.back(), std::uint64_t{kThreads * kEach});
  EXPECT_NEAR(snapshot.sum, kThreads * kEach * 0.001, 1e-6);
}

}  // namespace
}  // namespace tau::metrics
