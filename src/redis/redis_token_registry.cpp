#include "redis/redis_token_registry.h"

namespace tau::redis {

namespace {

std::int64_t integer_at(const Reply& reply, std::size_t index) {
  if (reply.type != Reply::Type::array || index >= reply.elements.size() ||
      reply.elements[index].type != Reply::Type::integer) {
    throw std::runtime_error("unexpected reply from the Redis token registry");
  }
  return reply.elements[index].integer;
}

}  // namespace

RedisTokenRegistry::RedisTokenRegistry(std::shared_ptr<RedisScript> script, std::string prefix)
    : script_(std::move(script)), prefix_(std::move(prefix)) {}

store::Ticket RedisTokenRegistry::add(const std::string& digest, std::int64_t expires_unix_ms,
                                      std::int64_t now) {
  // Redis has it once the script returns: nothing to wait for.
  script_->run("token_add", prefix_, now, {digest, std::to_string(expires_unix_ms)});
  return 0;
}

bool RedisTokenRegistry::valid(const std::string& digest, std::int64_t now) {
  return integer_at(script_->run("token_valid", prefix_, now, {digest}), 1) == 1;
}

auth::TokenRegistry::Counts RedisTokenRegistry::counts(std::int64_t now) {
  const Reply reply = script_->run("token_stats", prefix_, now, {});
  return Counts{static_cast<std::uint64_t>(integer_at(reply, 1)),
                static_cast<std::uint64_t>(integer_at(reply, 2))};
}

}  // namespace tau::redis
