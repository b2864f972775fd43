#include "redis/owner_lease.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "redis/redis_script.h"

namespace tau::redis {

OwnerLease::OwnerLease(Call call, std::string gateway_id, std::int64_t lease_ms,
                       std::size_t max_events_per_session)
    : call_(std::move(call)),
      gateway_id_(std::move(gateway_id)),
      lease_ms_(lease_ms),
      max_events_per_session_(max_events_per_session) {
  renew();
  thread_ = std::thread([this] { keep_renewing(); });
}

OwnerLease::~OwnerLease() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stopped_.notify_all();
  thread_.join();
}

void OwnerLease::renew() {
  const Reply reply =
      call_({gateway_id_, std::to_string(lease_ms_), std::to_string(max_events_per_session_)});
  for (const Reply& id : element(reply, 1).elements)
    spdlog::warn("session {} failed: the gateway that ran its worker is gone", id.text);
}

void OwnerLease::keep_renewing() {
  const auto every = std::chrono::milliseconds(std::max<std::int64_t>(1, lease_ms_ / 3));
  std::unique_lock lock(mutex_);
  while (!stopped_.wait_for(lock, every, [this] { return stopping_; })) {
    lock.unlock();
    try {
      renew();
    } catch (const std::exception& error) {
      spdlog::warn("redis: cannot renew the owner lease of {}: {}", gateway_id_, error.what());
    }
    lock.lock();
  }
}

}  // namespace tau::redis
