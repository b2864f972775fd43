#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis_client.h"

namespace tau::redis {

// This gateway's lease as the owner of the sessions whose workers it runs. It lasts `lease_ms`
// without renewal and is renewed every third of that on a thread of its own; once a gateway's
// lease has expired, the next renewal by any gateway fails that gateway's running sessions with
// a `gateway.owner_lost` event (the script's `lease` operation), as their workers died with it.
class OwnerLease {
 public:
  // Runs the script's `lease` operation with these arguments, as the pool runs every call.
  using Call = std::function<Reply(std::vector<std::string> arguments)>;

  // Takes the lease at once (throws core::Error(store_unavailable) when Redis is down), so it is
  // held before any session can name this gateway its owner; then starts renewing it.
  OwnerLease(Call call, std::string gateway_id, std::int64_t lease_ms,
             std::size_t max_events_per_session);
  // Stops renewing (the lease then expires unless another instance renews it).
  ~OwnerLease();
  OwnerLease(const OwnerLease&) = delete;
  OwnerLease& operator=(const OwnerLease&) = delete;

  const std::string& gateway_id() const { return gateway_id_; }

 private:
  void renew();
  void keep_renewing();

  const Call call_;
  const std::string gateway_id_;
  const std::int64_t lease_ms_;
  const std::size_t max_events_per_session_;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tau::redis
