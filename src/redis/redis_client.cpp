#include "redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <charconv>

namespace tau::redis {

namespace {

timeval to_timeval(std::chrono::milliseconds duration) {
  timeval value{};
  value.tv_sec = static_cast<time_t>(duration.count() / 1000);
  value.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
  return value;
}

Reply copy_reply(const redisReply& reply) {
  Reply result;
  switch (reply.type) {
    case REDIS_REPLY_INTEGER:
      result.type = Reply::Type::integer;
      result.integer = reply.integer;
      break;
    case REDIS_REPLY_STRING:
      result.type = Reply::Type::string;
      result.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_STATUS:
      result.type = Reply::Type::status;
      result.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_ERROR:
      result.type = Reply::Type::error;
      result.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_ARRAY:
      result.type = Reply::Type::array;
      result.elements.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i)
        result.elements.push_back(copy_reply(*reply.element[i]));
      break;
    default:
      result.type = Reply::Type::nil;
      break;
  }
  return result;
}

}  // namespace

std::string RedisAddress::describe() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return "redis://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
         std::to_string(database);
}

std::variant<RedisAddress, std::string> parse_redis_url(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed || parsed->scheme() != "redis")
    return std::string("must be a URL of the form redis://[:password@]HOST:PORT[/DB]");
  RedisAddress address;
  address.host = parsed->host_address();  // IPv6 literals without their brackets
  if (address.host.empty())
    return std::string("names no host");
  if (parsed->has_port()) {
    if (parsed->port_number() == 0)
      return std::string("has an invalid port");
    address.port = parsed->port_number();
  }
  if (parsed->has_password())
    address.password = parsed->password();
  const std::string path = parsed->path();
  if (!path.empty() && path != "/") {
    const std::string_view digits = std::string_view(path).substr(1);
    int database = 0;
    const auto [end, error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), database);
    if (error != std::errc{} || end != digits.data() + digits.size() || database < 0)
      return std::string("has a database that is not a non-negative integer");
    address.database = database;
  }
  if (parsed->has_query() || parsed->has_fragment())
    return std::string("must not have a query or fragment");
  return address;
}

RedisConnection::RedisConnection(const RedisAddress& address,
                                 std::chrono::milliseconds connect_timeout,
                                 std::optional<std::chrono::milliseconds> command_timeout) {
  context_ =
      redisConnectWithTimeout(address.host.c_str(), address.port, to_timeval(connect_timeout));
  if (context_ == nullptr)
    throw RedisUnavailable("cannot allocate a Redis connection");
  if (context_->err != 0) {
    const std::string reason = context_->errstr;
    redisFree(context_);
    context_ = nullptr;
    throw RedisUnavailable("cannot connect to " + address.describe() + ": " + reason);
  }
  redisEnableKeepAlive(context_);
  if (command_timeout)
    redisSetTimeout(context_, to_timeval(*command_timeout));
  auto check = [&](const Reply& reply, std::string_view what) {
    if (reply.is_error()) {
      redisFree(context_);
      context_ = nullptr;
      throw RedisUnavailable(std::string(what) + " refused by " + address.describe() + ": " +
                             reply.text);
    }
  };
  if (!address.password.empty())
    check(command({"AUTH", address.password}), "AUTH");
  if (address.database != 0)
    check(command({"SELECT", std::to_string(address.database)}), "SELECT");
}

RedisConnection::~RedisConnection() {
  if (context_ != nullptr)
    redisFree(context_);
}

Reply RedisConnection::command(const std::vector<std::string>& arguments) {
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
  pointers.reserve(arguments.size());
  lengths.reserve(arguments.size());
  for (const auto& argument : arguments) {
    pointers.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  void* raw = redisCommandArgv(context_, static_cast<int>(arguments.size()), pointers.data(),
                               lengths.data());
  if (raw == nullptr)
    throw RedisUnavailable(std::string("Redis connection lost: ") + context_->errstr);
  std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw),
                                                     freeReplyObject);
  return copy_reply(*reply);
}

Reply RedisConnection::next_reply() {
  void* raw = nullptr;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr)
    throw RedisUnavailable(std::string("Redis connection lost: ") + context_->errstr);
  std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw),
                                                     freeReplyObject);
  return copy_reply(*reply);
}

void RedisConnection::shut_down() {
  ::shutdown(context_->fd, SHUT_RDWR);
}

RedisClient::RedisClient(RedisAddress address, Options options)
    : address_(std::move(address)), options_(options) {}

bool RedisClient::unavailable() const {
  std::lock_guard lock(mutex_);
  return unavailable_;
}

std::unique_ptr<RedisConnection> RedisClient::acquire() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
    if (open_connections_ < options_.max_connections)
      break;
    connection_released_.wait(lock);
  }
  // Fail fast while Redis is known to be down: one connect attempt per backoff period.
  if (unavailable_ && std::chrono::steady_clock::now() < retry_at_)
    throw RedisUnavailable("Redis at " + address_.describe() + " is unreachable");
  ++open_connections_;
  lock.unlock();
  try {
    return std::make_unique<RedisConnection>(address_, options_.connect_timeout,
                                             options_.command_timeout);
  } catch (const RedisUnavailable&) {
    lock.lock();
    --open_connections_;
    lock.unlock();
    connection_released_.notify_one();
    mark_failed();
    throw;
  }
}

void RedisClient::release(std::unique_ptr<RedisConnection> connection) {
  {
    std::lock_guard lock(mutex_);
    if (connection) {
      idle_.push_back(std::move(connection));
    } else {
      --open_connections_;
    }
  }
  connection_released_.notify_one();
}

void RedisClient::mark_failed() {
  std::lock_guard lock(mutex_);
  backoff_ =
      std::clamp(backoff_ * 2, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  unavailable_ = true;
  // The idle connections most likely broke too.
  open_connections_ -= idle_.size();
  idle_.clear();
}

Reply RedisClient::command(const std::vector<std::string>& arguments) {
  auto connection = acquire();
  try {
    Reply reply = connection->command(arguments);
    release(std::move(connection));
    std::lock_guard lock(mutex_);
    unavailable_ = false;
    backoff_ = std::chrono::milliseconds(0);
    return reply;
  } catch (const RedisUnavailable&) {
    release(nullptr);
    mark_failed();
    throw;
  }
}

}  // namespace tau::redis
