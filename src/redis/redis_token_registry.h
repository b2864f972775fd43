#pragma once

#include <memory>
#include <string>

#include "auth/authenticator.h"
#include "redis/redis_script.h"

namespace tau::redis {

// Password-session tokens kept in Redis (their SHA-256 digests, expiring with them), so a token
// issued by one gateway is accepted by all. When Redis cannot be reached, calls throw
// core::Error(store_unavailable).
class RedisTokenRegistry final : public auth::TokenRegistry {
 public:
  RedisTokenRegistry(std::shared_ptr<RedisScript> script, std::string prefix);

  store::Ticket add(const std::string& digest, std::int64_t expires_unix_ms,
                    std::int64_t now) override;
  bool valid(const std::string& digest, std::int64_t now) override;
  Counts counts(std::int64_t now) override;
  bool calls_block() const override { return true; }

 private:
  const std::shared_ptr<RedisScript> script_;
  const std::string prefix_;
};

}  // namespace tau::redis
