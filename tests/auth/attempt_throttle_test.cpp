#include "auth/attempt_throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace tau::auth {
namespace {

ThrottleSettings small() {
  return ThrottleSettings{.window_ms = 60000,
                          .free_failures_per_key = 2,
                          .free_failures_global = 5,
                          .base_delay_ms = 100,
                          .max_key_delay_ms = 800,
                          .max_global_delay_ms = 300,
                          .max_wait_ms = 2000,
                          .max_keys = 100};
}

TEST(AttemptThrottle, FreeFailuresAreJudgedAtOnce) {
  AttemptThrottle throttle(small());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(throttle.reserve("a", 1000).wait_ms, 0);
    throttle.record_failure("a", 1000);
  }
  // Nobody else is slowed by one address's free failures.
  EXPECT_EQ(throttle.reserve("b", 1000).wait_ms, 0);
  EXPECT_EQ(throttle.delayed(), 0u);
}

TEST(AttemptThrottle, PastTheFreeFailuresAttemptsAreSpacedByADoublingDelay) {
  AttemptThrottle throttle(small());
  std::int64_t now = 1000;
  for (int i = 0; i < 3; ++i)
    throttle.record_failure("a", now);
  // 3 failures, 2 free: attempts are 100 ms apart; concurrent ones queue.
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 100);
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 200);
  now += 1000;
  throttle.record_failure("a", now);  // 4: 200 ms apart
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 200);
  now += 10000;
  for (int i = 0; i < 10; ++i)
    throttle.record_failure("a", now);
  // Capped at 800 ms.
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("a", now).wait_ms, 800);
}

TEST(AttemptThrottle, RotatingAddressesAreSlowedByTheGlobalCount) {
  AttemptThrottle throttle(small());
  const std::int64_t now = 1000;
  // Each address stays within its own free failures; together they pass the global ones.
  for (int i = 0; i < 6; ++i) {
    const std::string key = "127.0.0." + std::to_string(i);
    EXPECT_EQ(throttle.reserve(key, now).wait_ms, 0);
    throttle.record_failure(key, now);
  }
  EXPECT_EQ(throttle.reserve("127.0.1.1", now).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("127.0.1.2", now).wait_ms, 100);
  EXPECT_EQ(throttle.reserve("127.0.1.3", now).wait_ms, 200);
  EXPECT_EQ(throttle.delayed(), 2u);
}

TEST(AttemptThrottle, AQueueLongerThanTheMaximumWaitIsRefusedWithItsLength) {
  AttemptThrottle throttle(small());
  for (int i = 0; i < 20; ++i)
    throttle.record_failure("a", 1000);
  int judged = 0;
  AttemptThrottle::Turn turn;
  while (!(turn = throttle.reserve("a", 1000)).refused)
    ++judged;
  EXPECT_EQ(judged, 3);  // at 0, 800 and 1600 ms; 2400 is past the 2000 ms maximum
  EXPECT_EQ(turn.retry_after_ms, 2400);
  EXPECT_EQ(throttle.refused(), 1u);
}

TEST(AttemptThrottle, FailuresAreForgottenAWindowAfterTheLastOne) {
  AttemptThrottle throttle(small());
  for (int i = 0; i < 10; ++i)
    throttle.record_failure("a", 1000);
  EXPECT_EQ(throttle.reserve("a", 1000).wait_ms, 0);
  EXPECT_GT(throttle.reserve("a", 1000).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("a", 1000 + 60001 + 5000).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("a", 1000 + 60001 + 5000).wait_ms, 0);
}

TEST(AttemptThrottle, ASuccessForgetsTheAddresssFailures) {
  AttemptThrottle throttle(small());
  for (int i = 0; i < 4; ++i)
    throttle.record_failure("a", 1000);
  throttle.record_success("a");
  EXPECT_EQ(throttle.reserve("a", 1000).wait_ms, 0);
  EXPECT_EQ(throttle.reserve("a", 1000).wait_ms, 0);
}

TEST(AttemptThrottle, MemoryIsBoundedWhateverTheNumberOfAddresses) {
  AttemptThrottle throttle(small());
  // 1,000 addresses fail once each; only max_keys are remembered, the rest count globally.
  for (int i = 0; i < 1000; ++i)
    throttle.record_failure("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250),
                            1000);
  // Expired records make room again.
  throttle.record_failure("late", 1000 + 60001);
  for (int i = 0; i < 3; ++i)
    throttle.record_failure("late", 1000 + 60001);
  EXPECT_EQ(throttle.reserve("late", 1000 + 60001).wait_ms, 0);
  EXPECT_GT(throttle.reserve("late", 1000 + 60001).wait_ms, 0);
}

}  // namespace
}  // namespace tau::auth
