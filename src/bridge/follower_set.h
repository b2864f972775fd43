#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "bridge/session_service.h"

namespace tau::bridge {

// The followers of one session, as both session pools keep them: each is told of every change
// by `notify_all`. Not thread-safe: the pool calls it with its own lock held, which is why a
// follower's notify() may only record and wake its reader.
class FollowerSet {
 public:
  void add(std::shared_ptr<SessionFollower> follower) { followers_.push_back(std::move(follower)); }
  // Lets go of `follower` (every registration of it); harmless when it is not here.
  void remove(const SessionFollower* follower) {
    std::erase_if(followers_, [follower](const auto& held) { return held.get() == follower; });
  }
  // Tells every follower; `encoded_bytes_total` is the session's encoded bytes visible so far.
  void notify_all(std::uint64_t encoded_bytes_total) const {
    for (const auto& follower : followers_)
      follower->notify(encoded_bytes_total);
  }
  void clear() { followers_.clear(); }
  bool empty() const { return followers_.empty(); }
  std::size_t size() const { return followers_.size(); }

 private:
  std::vector<std::shared_ptr<SessionFollower>> followers_;
};

}  // namespace tau::bridge
