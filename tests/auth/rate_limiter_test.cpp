#include "auth/rate_limiter.h"

#include <gtest/gtest.h>

#include "support/manual_clock.h"

#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace tau::auth {
namespace {

using test::ManualClock;

constexpr std::int64_t kWindowSeconds = 60;
constexpr std::int64_t kWindowMs = kWindowSeconds * 1000;
// A window boundary: a multiple of the window length since the epoch.
constexpr std::int64_t kWindowStartMs = 28'333'333 * kWindowMs;

class RateLimiterTest : public ::testing::Test {
 protected:
  ManualClock clock_{kWindowStartMs};
  LocalRateLimiter limiter_{kWindowSeconds, 3, clock_.as_clock()};
};

TEST_F(RateLimiterTest, ReportsItsSettings) {
  EXPECT_EQ(limiter_.window_seconds(), kWindowSeconds);
  EXPECT_EQ(limiter_.max_requests(), 3u);
  EXPECT_EQ(limiter_.rejected_requests(), 0u);
}

TEST_F(RateLimiterTest, AllowsMaxRequestsPerWindowThenRefusesUntilTheWindowEnds) {
  clock_.set(kWindowStartMs + 10'000);
  for (int i = 0; i < 3; ++i) {
    const RateDecision decision = limiter_.check("alice");
    EXPECT_TRUE(decision.allowed) << "request " << i + 1;
    EXPECT_EQ(decision.retry_after_seconds, 0);
  }

  const RateDecision refused = limiter_.check("alice");

  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 50);
  EXPECT_EQ(limiter_.rejected_requests(), 1u);
}

TEST_F(RateLimiterTest, RefusedRequestsKeepBeingRefusedAndCounted) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter_.check("alice").allowed);

  for (int i = 0; i < 5; ++i)
    EXPECT_FALSE(limiter_.check("alice").allowed);

  EXPECT_EQ(limiter_.rejected_requests(), 5u);
}

TEST_F(RateLimiterTest, RetryAfterIsTheRemainingWindowRoundedUpAndAtLeastOneSecond) {
  struct Case {
    std::int64_t offset_ms;
    std::int64_t retry_after_seconds;
  };
  for (const Case& c : {Case{0, 60}, Case{1, 60}, Case{10'500, 50}, Case{58'999, 2},
                        Case{59'000, 1}, Case{59'001, 1}, Case{59'999, 1}}) {
    SCOPED_TRACE(testing::Message() << "offset_ms=" << c.offset_ms);
    ManualClock clock{kWindowStartMs};
    clock.set(kWindowStartMs + c.offset_ms);
    LocalRateLimiter limiter(kWindowSeconds, 1, clock.as_clock());
    ASSERT_TRUE(limiter.check("alice").allowed);

    const RateDecision refused = limiter.check("alice");

    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after_seconds, c.retry_after_seconds);
  }
}

TEST_F(RateLimiterTest, PrincipalsHaveIndependentBudgets) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter_.check("alice").allowed);
  ASSERT_FALSE(limiter_.check("alice").allowed);

  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limiter_.check("bob").allowed);
  EXPECT_FALSE(limiter_.check("bob").allowed);
  EXPECT_EQ(limiter_.rejected_requests(), 2u);
}

TEST_F(RateLimiterTest, NextWindowStartsWithAFullBudget) {
  clock_.set(kWindowStartMs + 59'999);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter_.check("alice").allowed);
  ASSERT_FALSE(limiter_.check("alice").allowed);

  clock_.set(kWindowStartMs + kWindowMs);  // the very first millisecond of the next window
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limiter_.check("alice").allowed) << "request " << i + 1;
  const RateDecision refused = limiter_.check("alice");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, kWindowSeconds);
  EXPECT_EQ(limiter_.rejected_requests(), 2u);
}

TEST_F(RateLimiterTest, WindowsAreAlignedToTheEpochNotToTheFirstRequest) {
  // Three requests late in one window, then three early in the next: all allowed although
  // they fall within one window length of each other.
  clock_.set(kWindowStartMs + 59'000);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter_.check("alice").allowed);
  clock_.set(kWindowStartMs + kWindowMs + 1'000);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limiter_.check("alice").allowed);
}

TEST_F(RateLimiterTest, PrincipalsFromAnEarlierWindowStartAfreshLater) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter_.check("alice").allowed);
  clock_.set(kWindowStartMs + kWindowMs);
  ASSERT_TRUE(limiter_.check("bob").allowed);

  clock_.set(kWindowStartMs + 2 * kWindowMs);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limiter_.check("alice").allowed);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limiter_.check("bob").allowed);
  EXPECT_FALSE(limiter_.check("alice").allowed);
  EXPECT_FALSE(limiter_.check("bob").allowed);
}

TEST_F(RateLimiterTest, WorksInTheFirstWindowAfterTheEpoch) {
  ManualClock clock{kWindowStartMs};
  clock.set(0);
  LocalRateLimiter limiter(kWindowSeconds, 2, clock.as_clock());

  EXPECT_TRUE(limiter.check("alice").allowed);
  EXPECT_TRUE(limiter.check("alice").allowed);
  const RateDecision refused = limiter.check("alice");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, kWindowSeconds);
}

TEST_F(RateLimiterTest, ConcurrentRequestsNeverExceedTheBudget) {
  constexpr int kThreads = 8;
  constexpr int kRequestsPerThread = 50;
  constexpr std::uint64_t kMaxRequests = 100;
  LocalRateLimiter limiter(kWindowSeconds, kMaxRequests, clock_.as_clock());
  std::atomic<int> allowed{0};
  std::latch start(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < kRequestsPerThread; ++i) {
          if (limiter.check("shared").allowed)
            ++allowed;
        }
      });
    }
  }

  EXPECT_EQ(allowed.load(), static_cast<int>(kMaxRequests));
  EXPECT_EQ(limiter.rejected_requests(), kThreads * kRequestsPerThread - kMaxRequests);
}

}  // namespace
}  // namespace tau::auth
