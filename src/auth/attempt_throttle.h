#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tau::auth {

// How failed credentials slow down the next attempts (docs/api.md, "Failed credentials").
struct ThrottleSettings {
  // Failures are remembered this long after the last one of the same key (or of anyone, for the
  // global count).
  std::int64_t window_ms = 60000;
  // Failures from one address judged at once; after that each attempt waits.
  std::uint32_t free_failures_per_key = 5;
  // Failures from all addresses together judged at once; after that every attempt waits.
  std::uint32_t free_failures_global = 50;
  // The first wait; it doubles with each further failure, up to the maxima.
  std::int64_t base_delay_ms = 250;
  std::int64_t max_key_delay_ms = 8000;
  std::int64_t max_global_delay_ms = 1000;
  // An attempt that would wait longer than this (attempts queue behind each other) is refused
  // at once with 429 instead.
  std::int64_t max_wait_ms = 30000;
  // Keys remembered at most: an attacker rotating addresses cannot grow memory past it (the
  // global count still applies to addresses beyond it).
  std::size_t max_keys = 100000;
};

// Slows down guessing: password attempts at the login route and bearer tokens on the others.
// Each failure of a key (a client address) counts against it and against everyone; past the free
// failures, attempts are spaced out by a delay that doubles with every failure, per key and
// globally, so neither one address nor many rotating ones can guess fast. An attempt is never
// refused for being from a throttled address: it is judged once its turn comes (a correct
// password from a throttled address gets in after the delay), unless the queue is longer than
// max_wait_ms. Thread-safe; nothing here blocks.
class AttemptThrottle {
 public:
  explicit AttemptThrottle(ThrottleSettings settings = {});

  struct Turn {
    std::int64_t wait_ms = 0;  // how long to wait before judging the attempt
    bool refused = false;      // the wait would exceed max_wait_ms: answer 429 now
    std::int64_t retry_after_ms = 0;
  };

  // Reserves the next turn of an attempt from `key` at `now` (milliseconds).
  Turn reserve(std::string_view key, std::int64_t now);
  // The attempt failed (wrong password or token).
  void record_failure(std::string_view key, std::int64_t now);
  // The attempt succeeded: the key's own failures are forgotten.
  void record_success(std::string_view key);

  // Attempts that had to wait, and attempts refused for a queue too long, since start.
  std::uint64_t delayed() const;
  std::uint64_t refused() const;

 private:
  struct Record {
    std::uint32_t failures = 0;
    std::int64_t last_failure = 0;
    std::int64_t next_turn = 0;  // the earliest time the next attempt may be judged
  };

  std::int64_t delay_after(std::uint32_t failures, std::uint32_t free, std::int64_t max) const;
  void forget_expired(Record& record, std::int64_t now) const;
  Record* record_of(std::string_view key, std::int64_t now);

  const ThrottleSettings settings_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Record> keys_;
  Record global_;
  std::uint64_t delayed_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace tau::auth
