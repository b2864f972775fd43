#include "auth/attempt_throttle.h"

#include <algorithm>
#include <iterator>

namespace tau::auth {

AttemptThrottle::AttemptThrottle(ThrottleSettings settings) : settings_(settings) {}

std::int64_t AttemptThrottle::delay_after(std::uint32_t failures, std::uint32_t free,
                                          std::int64_t max) const {
  if (failures <= free)
    return 0;
  // base, 2 x base, 4 x base, ... (the shift is bounded well before it could overflow)
  const std::uint32_t doublings = std::min<std::uint32_t>(failures - free - 1, 30);
  return std::min(settings_.base_delay_ms << doublings, max);
}

void AttemptThrottle::forget_expired(Record& record, std::int64_t now) const {
  if (record.failures > 0 && now - record.last_failure > settings_.window_ms)
    record.failures = 0;
}

AttemptThrottle::Turn AttemptThrottle::reserve(std::string_view key, std::int64_t now) {
  std::lock_guard lock(mutex_);
  forget_expired(global_, now);
  // Only keys that failed have a record: clients that never fail cost nothing here (while no
  // key has one, not even a copy of their key for the lookup).
  Record* record = nullptr;
  if (!keys_.empty()) {
    if (const auto found = keys_.find(std::string(key)); found != keys_.end()) {
      record = &found->second;
      forget_expired(*record, now);
    }
  }
  const std::int64_t key_delay =
      record ? delay_after(record->failures, settings_.free_failures_per_key,
                           settings_.max_key_delay_ms)
             : 0;
  const std::int64_t global_delay =
      delay_after(global_.failures, settings_.free_failures_global, settings_.max_global_delay_ms);
  // Each throttled attempt takes the next turn, so attempts made at once queue up rather than
  // all being judged after one delay.
  std::int64_t start = now;
  if (key_delay > 0)
    start = std::max(start, record->next_turn);
  if (global_delay > 0)
    start = std::max(start, global_.next_turn);
  const std::int64_t wait = start - now;
  if (wait > settings_.max_wait_ms) {
    ++refused_;
    return Turn{.wait_ms = 0, .refused = true, .retry_after_ms = wait};
  }
  if (key_delay > 0)
    record->next_turn = start + key_delay;
  if (global_delay > 0)
    global_.next_turn = start + global_delay;
  if (wait > 0)
    ++delayed_;
  return Turn{.wait_ms = wait};
}

void AttemptThrottle::record_failure(std::string_view key, std::int64_t now) {
  std::lock_guard lock(mutex_);
  forget_expired(global_, now);
  ++global_.failures;
  global_.last_failure = now;
  Record* record = record_of(key, now);
  if (record == nullptr)
    return;  // at capacity: this address counts globally only
  forget_expired(*record, now);
  ++record->failures;
  record->last_failure = now;
}

AttemptThrottle::Record* AttemptThrottle::record_of(std::string_view key, std::int64_t now) {
  if (const auto found = keys_.find(std::string(key)); found != keys_.end())
    return &found->second;
  if (keys_.size() >= settings_.max_keys) {
    std::erase_if(keys_, [&](const auto& entry) {
      const Record& record = entry.second;
      return now - record.last_failure > settings_.window_ms && record.next_turn <= now;
    });
    if (keys_.size() >= settings_.max_keys)
      return nullptr;
  }
  return &keys_.emplace(std::string(key), Record{}).first->second;
}

void AttemptThrottle::record_success(std::string_view key) {
  std::lock_guard lock(mutex_);
  if (const auto found = keys_.find(std::string(key)); found != keys_.end())
    keys_.erase(found);
}

std::uint64_t AttemptThrottle::delayed() const {
  std::lock_guard lock(mutex_);
  return delayed_;
}

std::uint64_t AttemptThrottle::refused() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

}  // namespace tau::auth
