#include "redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <charconv>
#include <system_error>

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

int RedisConnection::socket() const {
  return context_->fd;
}

PipelinedConnection::PipelinedConnection(const RedisAddress& address,
                                         std::chrono::milliseconds connect_timeout,
                                         std::chrono::milliseconds command_timeout)
    : command_timeout_(command_timeout),
      description_(address.describe()),
      // The command timeout is the socket's too: a send Redis does not take within it fails,
      // and an idle reader wakes that often to look for overdue replies.
      connection_(std::make_unique<RedisConnection>(address, connect_timeout, command_timeout)),
      socket_(connection_->socket()),
      reader_(redisReaderCreate()) {
  if (reader_ == nullptr)
    throw RedisUnavailable("cannot allocate a Redis reply reader");
  reader_thread_ = std::thread([this] { read_replies(); });
}

PipelinedConnection::~PipelinedConnection() {
  fail("the connection to " + description_ + " was closed");
  reader_thread_.join();
  redisReaderFree(reader_);
}

bool PipelinedConnection::broken() const {
  std::lock_guard lock(mutex_);
  return broken_;
}

std::size_t PipelinedConnection::in_flight() const {
  std::lock_guard lock(mutex_);
  return waiting_.size();
}

std::uint64_t PipelinedConnection::writes() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

std::uint64_t PipelinedConnection::commands() const {
  std::lock_guard lock(mutex_);
  return commands_;
}

bool PipelinedConnection::enqueue(const std::vector<std::string>& arguments, Done done) {
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
  pointers.reserve(arguments.size());
  lengths.reserve(arguments.size());
  for (const auto& argument : arguments) {
    pointers.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  // hiredis' sds formatter, not redisFormatCommandArgv: that one writes each length with
  // sprintf, which was the gateway's largest cost per append on Redis.
  sds formatted = nullptr;
  const int length = redisFormatSdsCommandArgv(&formatted, static_cast<int>(arguments.size()),
                                               pointers.data(), lengths.data());
  if (length < 0)
    throw std::bad_alloc();
  const std::unique_ptr<char, void (*)(sds)> owned(formatted, redisFreeSdsCommand);
  std::unique_lock lock(mutex_);
  if (broken_) {
    const std::string reason = broken_reason_;
    lock.unlock();
    // In a statement of its own (see PipelinedConnection::command).
    std::exception_ptr error = std::make_exception_ptr(RedisUnavailable(reason));
    done(std::move(error), Reply{});
    return false;
  }
  // Queued and expected under one lock, so the replies' order is the bytes' order.
  queued_.append(formatted, static_cast<std::size_t>(length));
  waiting_.push_back(Call{std::move(done), std::chrono::steady_clock::now()});
  ++commands_;
  return !std::exchange(writing_, true);
}

Reply PipelinedConnection::command(const std::vector<std::string>& arguments) {
  // The answer crosses threads as a reply or a reason, never as an exception object: the
  // caller throws its own (an exception shared by two threads is freed by whichever lets go
  // last, which ThreadSanitizer cannot see ordered). For the same reason an exception handed to
  // a `done` is made in a statement of its own: make_exception_ptr(E(...)) copies a temporary
  // that shares the message's reference-counted string, and the temporary must be gone before
  // the exception goes to another thread.
  struct Answer {
    std::mutex mutex;
    std::condition_variable answered;
    bool done = false;
    Reply reply;
    std::optional<std::string> failure;
  };
  auto answer = std::make_shared<Answer>();
  const bool writes_now = enqueue(arguments, [answer](std::exception_ptr error, Reply reply) {
    std::optional<std::string> failure;
    if (error) {
      try {
        std::rethrow_exception(std::move(error));
      } catch (const std::exception& unavailable) {
        failure = unavailable.what();
      }
    }
    {
      std::lock_guard lock(answer->mutex);
      answer->reply = std::move(reply);
      answer->failure = std::move(failure);
      answer->done = true;
    }
    answer->answered.notify_one();
  });
  if (writes_now)
    write_queued(true);
  std::unique_lock lock(answer->mutex);
  answer->answered.wait(lock, [&] { return answer->done; });
  if (answer->failure)
    throw RedisUnavailable(*answer->failure);
  return std::move(answer->reply);
}

void PipelinedConnection::submit(const std::vector<std::string>& arguments, Done done) {
  if (enqueue(arguments, std::move(done)))
    write_queued(false);
}

bool PipelinedConnection::queue(const std::vector<std::string>& arguments, Done done) {
  return enqueue(arguments, std::move(done));
}

void PipelinedConnection::write_queued(bool may_wait) {
  std::string batch;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (queued_.empty() || broken_) {
        writing_ = false;
        return;
      }
      batch.swap(queued_);
      ++writes_;
    }
    // No lock held while the socket takes the bytes: callers keep queueing for the next write.
    std::size_t sent = 0;
    while (sent < batch.size()) {
      const ssize_t written = ::send(socket_, batch.data() + sent, batch.size() - sent,
                                     MSG_NOSIGNAL | (may_wait ? 0 : MSG_DONTWAIT));
      if (written < 0 && errno == EINTR)
        continue;
      if (written <= 0) {
        // Half a command cannot be taken back: whatever the reason, the connection is done.
        const std::string reason = written == 0 ? "nothing written"
                                   : errno == EAGAIN || errno == EWOULDBLOCK
                                       ? "Redis takes no more commands"
                                       : std::generic_category().message(errno);
        fail("Redis connection lost while sending: " + reason);
        std::lock_guard lock(mutex_);
        writing_ = false;
        return;
      }
      sent += static_cast<std::size_t>(written);
    }
    batch.clear();
  }
}

void PipelinedConnection::read_replies() {
  std::array<char, 16384> buffer{};
  while (true) {
    const ssize_t received = ::recv(socket_, buffer.data(), buffer.size(), 0);
    if (received < 0 && errno == EINTR)
      continue;
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The socket's timeout passed without a byte: only a problem when a reply is overdue.
      if (reply_overdue()) {
        fail("Redis at " + description_ + " did not answer within " +
             std::to_string(command_timeout_.count()) + " ms");
        return;
      }
      continue;
    }
    if (received <= 0) {
      fail(received == 0 ? "Redis closed the connection"
                         : "Redis connection lost: " + std::generic_category().message(errno));
      return;
    }
    if (redisReaderFeed(reader_, buffer.data(), static_cast<std::size_t>(received)) != REDIS_OK) {
      fail("cannot buffer Redis's reply");
      return;
    }
    while (true) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        fail("Redis sent a malformed reply");
        return;
      }
      if (raw == nullptr)
        break;
      std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw),
                                                         freeReplyObject);
      hand_over(copy_reply(*reply));
    }
    if (broken())
      return;
  }
}

void PipelinedConnection::hand_over(Reply reply) {
  std::unique_lock lock(mutex_);
  if (waiting_.empty()) {
    lock.unlock();
    fail("Redis sent a reply to no command");
    return;
  }
  Call call = std::move(waiting_.front());
  waiting_.pop_front();
  lock.unlock();
  call.done(nullptr, std::move(reply));
}

bool PipelinedConnection::reply_overdue() {
  std::lock_guard lock(mutex_);
  return !waiting_.empty() &&
         std::chrono::steady_clock::now() - waiting_.front().queued_at >= command_timeout_;
}

void PipelinedConnection::fail(const std::string& reason) {
  std::deque<Call> failed;
  {
    std::lock_guard lock(mutex_);
    if (!broken_) {
      broken_ = true;
      broken_reason_ = reason;
    }
    failed.swap(waiting_);
    queued_.clear();
  }
  // Wakes the reader (recv returns) and refuses any later write.
  ::shutdown(socket_, SHUT_RDWR);
  for (Call& call : failed) {
    // In a statement of its own (see PipelinedConnection::command).
    std::exception_ptr error = std::make_exception_ptr(RedisUnavailable(reason));
    call.done(std::move(error), Reply{});
  }
}

RedisClient::RedisClient(RedisAddress address, Options options)
    : address_(std::move(address)), options_(options) {}

bool RedisClient::unavailable() const {
  std::lock_guard lock(mutex_);
  return unavailable_;
}

std::size_t RedisClient::in_flight() const {
  std::shared_ptr<PipelinedConnection> current;
  {
    std::lock_guard lock(mutex_);
    current = connection_;
  }
  return current ? current->in_flight() : 0;
}

std::shared_ptr<PipelinedConnection> RedisClient::connection() {
  std::unique_lock lock(mutex_);
  // One caller connects; the others wait for its connection rather than open their own.
  connect_finished_.wait(lock, [&] { return !connecting_; });
  if (connection_ && !connection_->broken())
    return connection_;
  // Fail fast while Redis is known to be down: one connect attempt per backoff period.
  if (unavailable_ && std::chrono::steady_clock::now() < retry_at_)
    throw RedisUnavailable("Redis at " + address_.describe() + " is unreachable");
  connecting_ = true;
  std::shared_ptr<PipelinedConnection> broken = std::move(connection_);
  lock.unlock();
  broken.reset();  // joins its reader, outside the lock
  std::shared_ptr<PipelinedConnection> connected;
  try {
    connected = std::make_shared<PipelinedConnection>(address_, options_.connect_timeout,
                                                      options_.command_timeout);
  } catch (const RedisUnavailable&) {
    lock.lock();
    connecting_ = false;
    lock.unlock();
    connect_finished_.notify_all();
    mark_failed(nullptr);
    throw;
  }
  lock.lock();
  connection_ = connected;
  connecting_ = false;
  unavailable_ = false;
  backoff_ = std::chrono::milliseconds(0);
  lock.unlock();
  connect_finished_.notify_all();
  return connected;
}

void RedisClient::mark_failed(const PipelinedConnection* broken) {
  std::lock_guard lock(mutex_);
  // Only the connection that failed is dropped (another caller may have replaced it already).
  if (broken != nullptr && connection_.get() != broken)
    return;
  backoff_ =
      std::clamp(backoff_ * 2, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  unavailable_ = true;
}

bool RedisClient::try_submit(const std::vector<std::string>& arguments,
                             PipelinedConnection::Done done) {
  std::shared_ptr<PipelinedConnection> current;
  {
    std::lock_guard lock(mutex_);
    if (connecting_ || !connection_ || connection_->broken())
      return false;
    current = connection_;
  }
  // The callback names the connection without owning it: the connection owns the callback until
  // it has run, and must not be destroyed by its own reader thread.
  const PipelinedConnection* submitted_on = current.get();
  current->submit(arguments, [this, submitted_on, done = std::move(done)](std::exception_ptr error,
                                                                          Reply reply) mutable {
    if (error)
      mark_failed(submitted_on);
    done(std::move(error), std::move(reply));
  });
  return true;
}

void RedisClient::set_write_deferrer(WriteDeferrer defer) {
  std::lock_guard lock(mutex_);
  defer_writes_ = std::move(defer);
}

void RedisClient::flush() {
  std::shared_ptr<PipelinedConnection> current;
  {
    std::lock_guard lock(mutex_);
    current = connection_;
  }
  if (current)
    current->flush();
}

Reply RedisClient::command(const std::vector<std::string>& arguments) {
  std::shared_ptr<PipelinedConnection> current = connection();
  try {
    return current->command(arguments);
  } catch (const RedisUnavailable&) {
    mark_failed(current.get());
    throw;
  }
}

}  // namespace tau::redis
