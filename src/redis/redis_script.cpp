#include "redis/redis_script.h"

#include <spdlog/spdlog.h>

#include "core/errors.h"
#include "redis/feed_message.h"

namespace tau::assets {
extern const std::string_view redis_gateway_lua;  // src/redis/gateway.lua
}

namespace tau::redis {

namespace {

// Errors Redis answers while it cannot serve (starting, out of memory, a replica): the same to
// a client as Redis being down.
bool is_transient_error(std::string_view text) {
  for (std::string_view prefix : {"LOADING", "BUSY", "READONLY", "MASTERDOWN", "OOM", "TRYAGAIN"})
    if (text.starts_with(prefix))
      return true;
  return false;
}

// What run() makes of the script's reply: the reply, or the error to throw.
Reply checked(Reply reply) {
  if (reply.is_error()) {
    if (is_transient_error(reply.text)) {
      spdlog::warn("redis: {}", reply.text);
      throw store_unavailable_error();
    }
    throw std::runtime_error("the gateway's Redis script failed: " + reply.text);
  }
  return reply;
}

bool is_noscript(const Reply& reply) {
  return reply.is_error() && reply.text.starts_with("NOSCRIPT");
}

}  // namespace

core::Error store_unavailable_error() {
  return core::errors::store_unavailable(
      "the shared store (Redis) is unreachable; nothing was changed");
}

RedisScript::RedisScript(std::shared_ptr<RedisClient> client) : client_(std::move(client)) {
  sha_ = load();
}

std::string RedisScript::load() {
  const Reply loaded = client_->command({"SCRIPT", "LOAD", std::string(assets::redis_gateway_lua)});
  if (loaded.is_error())
    throw RedisUnavailable("cannot load the gateway's script into Redis: " + loaded.text);
  return loaded.text;
}

std::vector<std::string> RedisScript::command_of(std::string_view operation,
                                                 std::string_view prefix, std::int64_t now_unix_ms,
                                                 std::vector<std::string> arguments) {
  std::vector<std::string> command;
  command.reserve(6 + arguments.size());
  {
    std::lock_guard lock(mutex_);
    command.insert(command.end(), {"EVALSHA", sha_, "0", std::string(operation),
                                   std::string(prefix), std::to_string(now_unix_ms)});
  }
  for (auto& argument : arguments)
    command.push_back(std::move(argument));
  return command;
}

bool RedisScript::try_run_async(std::string_view operation, std::string_view prefix,
                                std::int64_t now_unix_ms, std::vector<std::string> arguments,
                                Done done) {
  auto command = std::make_shared<std::vector<std::string>>(
      command_of(operation, prefix, now_unix_ms, std::move(arguments)));
  const auto finish = [](const Done& done, std::exception_ptr error, Reply reply) {
    if (error) {
      // RedisUnavailable, logged and reported as run() does.
      try {
        std::rethrow_exception(std::move(error));
      } catch (const std::exception& unavailable) {
        spdlog::warn("redis: {}", unavailable.what());
      }
      // In a statement of its own (see PipelinedConnection::command).
      std::exception_ptr unavailable_error = std::make_exception_ptr(store_unavailable_error());
      done(std::move(unavailable_error), Reply{});
      return;
    }
    // The exception goes to `done` only once its catch is left, so that `done` holds the only
    // reference to it (see PipelinedConnection::command).
    std::exception_ptr failure;
    try {
      reply = checked(std::move(reply));
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure)
      reply = Reply{};
    done(std::move(failure), std::move(reply));
  };
  return client_->try_submit(*command, [this, command, finish, done = std::move(done)](
                                           std::exception_ptr error, Reply reply) mutable {
    if (error || !is_noscript(reply)) {
      finish(done, std::move(error), std::move(reply));
      return;
    }
    // A restarted Redis has forgotten the script: EVAL runs it and caches it again (under
    // the same SHA), without a wait on this thread (the client's reader).
    (*command)[0] = "EVAL";
    (*command)[1] = std::string(assets::redis_gateway_lua);
    const bool sent =
        client_->try_submit(*command, [finish, done](std::exception_ptr error, Reply reply) {
          finish(done, std::move(error), std::move(reply));
        });
    if (!sent) {
      // In a statement of its own (see PipelinedConnection::command).
      std::exception_ptr unsent = std::make_exception_ptr(RedisUnavailable("no connection"));
      finish(done, std::move(unsent), Reply{});
    }
  });
}

Reply RedisScript::run(std::string_view operation, std::string_view prefix,
                       std::int64_t now_unix_ms, std::vector<std::string> arguments) {
  std::vector<std::string> command =
      command_of(operation, prefix, now_unix_ms, std::move(arguments));
  Reply reply;
  try {
    for (int attempt = 0; attempt < 2; ++attempt) {
      {
        std::lock_guard lock(mutex_);
        command[1] = sha_;
      }
      reply = client_->command(command);
      // A restarted Redis has forgotten the script: load it again and retry once.
      if (attempt == 0 && is_noscript(reply)) {
        std::string sha = load();
        std::lock_guard lock(mutex_);
        sha_ = std::move(sha);
        continue;
      }
      break;
    }
  } catch (const RedisUnavailable& error) {
    spdlog::warn("redis: {}", error.what());
    throw store_unavailable_error();
  }
  return checked(std::move(reply));
}

const Reply& element(const Reply& reply, std::size_t index) {
  if (reply.type != Reply::Type::array || index >= reply.elements.size())
    throw std::runtime_error("unexpected reply from the Redis session script");
  return reply.elements[index];
}

std::int64_t integer_of(const Reply& reply) {
  if (reply.type == Reply::Type::integer)
    return reply.integer;
  if (reply.type == Reply::Type::nil)
    return 0;
  throw std::runtime_error("unexpected non-integer in a reply from the Redis session script");
}

core::SessionSnapshot snapshot_of(const Reply& reply) {
  core::SessionSnapshot session;
  session.session_id = element(reply, snapshot_field::session_id).text;
  session.workspace_id = element(reply, snapshot_field::workspace_id).text;
  const std::string& status_text = element(reply, snapshot_field::status).text;
  const auto status = core::session_status_from_string(status_text);
  if (!status)
    throw std::runtime_error("unknown session status in Redis: " + status_text);
  session.status = *status;
  session.started_unix_ms = integer_of(element(reply, snapshot_field::started));
  session.last_activity_unix_ms = integer_of(element(reply, snapshot_field::activity));
  session.queued_followups =
      static_cast<std::size_t>(integer_of(element(reply, snapshot_field::queued_followups)));
  return session;
}

core::SessionEvent event_of(const Reply& reply) {
  core::SessionEvent event{
      static_cast<std::uint64_t>(integer_of(element(reply, event_field::sequence_id))),
      element(reply, event_field::event_type).text, element(reply, event_field::message).text,
      integer_of(element(reply, event_field::timestamp))};
  // Only events with data have it (entries stored before data existed never do).
  if (reply.elements.size() > event_field::data)
    event.data = element(reply, event_field::data).text;
  return event;
}

}  // namespace tau::redis
