#include "redis/redis_session_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <chrono>

#include "core/errors.h"
#include "core/random_id.h"

namespace tau::redis {

using core::SessionSnapshot;
using core::SessionStatus;

namespace {

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

SessionSnapshot snapshot_of(const Reply& reply) {
  SessionSnapshot session;
  session.session_id = element(reply, 0).text;
  session.workspace_id = element(reply, 1).text;
  const auto status = core::session_status_from_string(element(reply, 2).text);
  if (!status)
    throw std::runtime_error("unknown session status in Redis: " + element(reply, 2).text);
  session.status = *status;
  session.started_unix_ms = integer_of(element(reply, 3));
  session.last_activity_unix_ms = integer_of(element(reply, 4));
  session.queued_followups = static_cast<std::size_t>(integer_of(element(reply, 5)));
  return session;
}

core::SessionEvent event_of(const Reply& reply) {
  return core::SessionEvent{static_cast<std::uint64_t>(integer_of(element(reply, 0))),
                            element(reply, 1).text, element(reply, 2).text,
                            integer_of(element(reply, 3))};
}

std::int64_t json_integer(const boost::json::value& value) {
  // cjson writes numbers as doubles (integers below 2^53 exactly).
  return value.is_int64() ? value.as_int64() : static_cast<std::int64_t>(value.to_number<double>());
}

RedisPoolSettings with_gateway_id(RedisPoolSettings settings) {
  if (settings.gateway_id.empty())
    settings.gateway_id = "gw_" + core::random_hex(8);
  return settings;
}

}  // namespace

RedisSessionPool::RedisSessionPool(std::shared_ptr<RedisScript> script, RedisPoolSettings settings,
                                   bridge::PoolLimits limits, core::Clock clock,
                                   core::EventEncoder encoder, IdGenerator id_generator)
    : script_(std::move(script)),
      settings_(with_gateway_id(std::move(settings))),
      limits_(limits),
      clock_(std::move(clock)),
      encoder_(std::move(encoder)),
      id_generator_(id_generator ? std::move(id_generator) : IdGenerator(core::random_session_id)),
      call_seconds_(metrics::Histogram::latency_seconds_bounds()) {
  // Held before any session can name this gateway its owner.
  renew_lease();
  feed_thread_ = std::thread([this] { run_feed(); });
  lease_thread_ = std::thread([this] { run_lease(); });
}

RedisSessionPool::~RedisSessionPool() {
  {
    std::lock_guard lock(feed_mutex_);
    stopping_ = true;
    if (feed_connection_)
      feed_connection_->shut_down();
  }
  feed_retry_.notify_all();
  feed_thread_.join();
  lease_thread_.join();
}

void RedisSessionPool::renew_lease() {
  const Reply reply = run("lease",
                          {settings_.gateway_id, std::to_string(settings_.owner_lease_ms),
                           std::to_string(limits_.max_events_per_session)},
                          true);
  for (const Reply& id : element(reply, 1).elements)
    spdlog::warn("session {} failed: the gateway that ran its worker is gone", id.text);
}

void RedisSessionPool::run_lease() {
  const auto every =
      std::chrono::milliseconds(std::max<std::int64_t>(1, settings_.owner_lease_ms / 3));
  std::unique_lock lock(feed_mutex_);
  while (!feed_retry_.wait_for(lock, every, [this] { return stopping_.load(); })) {
    lock.unlock();
    try {
      renew_lease();
    } catch (const std::exception& error) {
      spdlog::warn("redis: cannot renew the owner lease of {}: {}", settings_.gateway_id,
                   error.what());
    }
    lock.lock();
  }
}

Reply RedisSessionPool::run(const char* operation, std::vector<std::string> arguments, bool changes,
                            std::optional<std::int64_t> now) {
  arguments.insert(arguments.begin(), std::to_string(limits_.inactivity_timeout_ms));
  const auto started = std::chrono::steady_clock::now();
  Reply reply = script_->run(operation, prefix_, now.value_or(clock_()), std::move(arguments));
  if (changes) {
    call_seconds_.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    ++changes_;
  }
  if (element(reply, 0).text == "error") {
    const std::string& code = element(reply, 1).text;
    if (code == "not_found")
      throw core::errors::session_not_found();
    if (code == "not_running") {
      throw core::errors::session_not_running(element(reply, 2).text);
    }
    if (code == "limit") {
      throw core::errors::session_limit_reached(limits_.max_active_sessions);
    }
    throw std::runtime_error("Redis session script answered an unknown error: " + code);
  }
  return reply;
}

bridge::OpenResult RedisSessionPool::open(std::string_view workspace_id, bool with_worker) {
  const std::string_view workspace = core::checked_workspace_id(workspace_id);
  const Reply reply =
      run("open",
          {std::string(workspace), id_generator_(), std::to_string(limits_.max_active_sessions),
           with_worker ? settings_.gateway_id : std::string()},
          true);
  bridge::OpenResult result;
  result.created = element(reply, 1).text == "created";
  result.session = snapshot_of(element(reply, 2));
  if (result.created && with_worker) {
    std::lock_guard lock(owned_mutex_);
    owned_.emplace(result.session.session_id, Owned{});
  }
  return result;
}

void RedisSessionPool::discard(std::string_view session_id) {
  {
    std::lock_guard lock(owned_mutex_);
    owned_.erase(std::string(session_id));
  }
  run("discard", {std::string(session_id)}, true);
}

SessionSnapshot RedisSessionPool::get(std::string_view session_id) {
  return snapshot_of(element(run("get", {std::string(session_id)}, false), 1));
}

bridge::AppendResult RedisSessionPool::append(std::string_view session_id,
                                              std::string_view event_type, std::string_view message,
                                              bool require_running, bool queue) {
  const Reply reply = run("append",
                          {std::string(session_id), std::string(event_type), std::string(message),
                           std::to_string(limits_.max_events_per_session),
                           require_running ? "1" : "0", queue ? "1" : "0"},
                          true);
  bridge::AppendResult result;
  result.session = snapshot_of(element(reply, 2));
  result.event = core::SessionEvent{static_cast<std::uint64_t>(integer_of(element(reply, 1))),
                                    std::string(event_type), std::string(message),
                                    result.session.last_activity_unix_ms};
  ++events_appended_;
  if (queue)
    ++followups_queued_;
  return result;
}

bridge::AppendResult RedisSessionPool::append_progress(std::string_view session_id,
                                                       std::string_view message) {
  return append(session_id, core::event_types::progress, core::checked_message(message), true,
                false);
}

bridge::AppendResult RedisSessionPool::append_followup(std::string_view session_id,
                                                       std::string_view message) {
  return append(session_id, core::event_types::followup, core::checked_message(message), true,
                true);
}

bridge::AppendResult RedisSessionPool::append_event(std::string_view session_id,
                                                    std::string_view event_type,
                                                    std::string_view message) {
  return append(session_id, event_type, message, false, false);
}

void RedisSessionPool::append_events(std::string_view session_id,
                                     const std::vector<NewEvent>& events) {
  if (events.empty())
    return;
  std::vector<std::string> arguments{std::string(session_id),
                                     std::to_string(limits_.max_events_per_session)};
  for (const auto& event : events) {
    arguments.push_back(event.event_type);
    arguments.push_back(event.message);
  }
  run("append_many", std::move(arguments), true);
  events_appended_ += events.size();
}

bridge::DrainResult RedisSessionPool::drain_followups(std::string_view session_id,
                                                      std::size_t limit) {
  const Reply reply = run("drain", {std::string(session_id), std::to_string(limit)}, true);
  bridge::DrainResult result;
  for (const Reply& message : element(reply, 1).elements)
    result.followups.push_back(message.text);
  result.session = snapshot_of(element(reply, 2));
  followups_drained_ += result.followups.size();
  return result;
}

bridge::Replay RedisSessionPool::replay(std::string_view session_id,
                                        std::optional<std::uint64_t> after_sequence_id,
                                        std::size_t limit) {
  const Reply reply = run("replay",
                          {std::string(session_id), std::to_string(after_sequence_id.value_or(0)),
                           std::to_string(limit)},
                          false);
  bridge::Replay replay;
  replay.session = snapshot_of(element(reply, 1));
  replay.first_retained_sequence_id = static_cast<std::uint64_t>(integer_of(element(reply, 2)));
  replay.last_sequence_id = static_cast<std::uint64_t>(integer_of(element(reply, 3)));
  for (const Reply& entry : element(reply, 4).elements) {
    auto retained = std::make_shared<core::RetainedEvent>();
    retained->event = event_of(entry);
    if (encoder_)
      retained->encoded = encoder_(retained->event);
    replay.events.push_back(std::move(retained));
  }
  return replay;
}

core::SharedEvent RedisSessionPool::retain(Watch& watch, core::SessionEvent event) const {
  auto retained = std::make_shared<core::RetainedEvent>();
  retained->event = std::move(event);
  if (encoder_)
    retained->encoded = encoder_(retained->event);
  watch.encoded_bytes_total += retained->encoded.size();
  retained->encoded_bytes_through = watch.encoded_bytes_total;
  watch.events.push_back(retained);
  watch.known_through = retained->event.sequence_id;
  while (watch.events.size() > limits_.max_events_per_session)
    watch.events.pop_front();
  return retained;
}

bridge::FollowStart RedisSessionPool::follow(std::string_view session_id,
                                             std::optional<std::uint64_t> after_sequence_id,
                                             std::size_t limit,
                                             std::shared_ptr<bridge::SessionFollower> follower) {
  const std::string id(session_id);
  const bridge::SessionFollower* follower_key = follower.get();
  {
    // Registered before the session is read, so a change made after the read reaches the
    // watch through the feed (held back until the seed is in).
    std::lock_guard lock(watches_mutex_);
    if (!feed_connected_)
      throw store_unavailable_error();
    watches_[id].followers.push_back(std::move(follower));
  }
  try {
    bridge::Replay stored = replay(id, std::nullopt, limits_.max_events_per_session);
    std::lock_guard lock(watches_mutex_);
    Watch& watch = watches_[id];
    if (watch.lost)
      throw store_unavailable_error();
    if (!watch.seeded) {
      for (const auto& event : stored.events)
        retain(watch, event->event);
      watch.known_through = stored.last_sequence_id;
      watch.session = stored.session;
      watch.seeded = true;
      for (const auto& message : watch.early_messages)
        apply_feed_message_locked(watch, boost::json::parse(message).as_array());
      watch.early_messages.clear();
    }
    bridge::FollowStart start;
    start.replay.session = watch.session;
    start.replay.last_sequence_id = watch.known_through;
    start.replay.encoded_bytes_total = watch.encoded_bytes_total;
    if (!watch.events.empty())
      start.replay.first_retained_sequence_id = watch.events.front()->event.sequence_id;
    const std::uint64_t after = after_sequence_id.value_or(0);
    for (const auto& event : watch.events) {
      if (start.replay.events.size() == limit)
        break;
      if (event->event.sequence_id > after)
        start.replay.events.push_back(event);
    }
    start.live_after_sequence_id = watch.known_through;
    return start;
  } catch (...) {
    unfollow(id, follower_key);
    throw;
  }
}

bridge::FollowUpdate RedisSessionPool::events_after(std::string_view session_id,
                                                    std::uint64_t after_sequence_id,
                                                    std::size_t max_events) {
  bridge::FollowUpdate update;
  std::lock_guard lock(watches_mutex_);
  const auto found = watches_.find(std::string(session_id));
  if (found == watches_.end() || found->second.lost || !found->second.seeded) {
    update.feed_lost = true;
    return update;
  }
  const Watch& watch = found->second;
  update.session = watch.session;
  const std::uint64_t first = watch.events.empty() ? 0 : watch.events.front()->event.sequence_id;
  if (after_sequence_id < watch.known_through && after_sequence_id + 1 < first) {
    update.events_lost = true;
    return update;
  }
  if (first != 0 && after_sequence_id < watch.known_through) {
    auto position =
        watch.events.begin() + static_cast<std::ptrdiff_t>(after_sequence_id + 1 - first);
    for (; position != watch.events.end() && update.events.size() < max_events; ++position)
      update.events.push_back(*position);
  }
  const std::uint64_t given_through =
      update.events.empty() ? after_sequence_id : update.events.back()->event.sequence_id;
  update.finished = core::is_terminal(watch.session.status) && given_through >= watch.known_through;
  return update;
}

void RedisSessionPool::unfollow(std::string_view session_id,
                                const bridge::SessionFollower* follower) {
  std::lock_guard lock(watches_mutex_);
  const auto found = watches_.find(std::string(session_id));
  if (found == watches_.end())
    return;
  std::erase_if(found->second.followers,
                [follower](const auto& candidate) { return candidate.get() == follower; });
  if (found->second.followers.empty())
    watches_.erase(found);
}

void RedisSessionPool::apply_feed_message_locked(Watch& watch, const boost::json::array& message) {
  // [session_id, workspace_id, status, started, activity, queued, event], where event is
  // [sequence_id, type, message, timestamp] or empty (a change of state only).
  const auto status = core::session_status_from_string(message.at(2).as_string());
  if (status)
    watch.session.status = *status;
  watch.session.last_activity_unix_ms = json_integer(message.at(4));
  watch.session.queued_followups = static_cast<std::size_t>(json_integer(message.at(5)));
  const auto* event = message.at(6).if_array();
  if (event == nullptr || event->size() != 4)
    return;
  const auto sequence_id = static_cast<std::uint64_t>(json_integer(event->at(0)));
  if (sequence_id <= watch.known_through)
    return;  // the seed already held it
  if (sequence_id != watch.known_through + 1) {
    watch.lost = true;  // a change went missing: its followers must resume from Redis
    return;
  }
  retain(watch,
         core::SessionEvent{sequence_id, std::string(event->at(1).as_string()),
                            std::string(event->at(2).as_string()), json_integer(event->at(3))});
}

void RedisSessionPool::notify_locked(Watch& watch) {
  for (const auto& follower : watch.followers)
    follower->notify(watch.encoded_bytes_total);
}

void RedisSessionPool::run_feed() {
  const std::string channel = prefix_ + "feed";
  RedisClient& client = script_->client();
  auto backoff = std::chrono::milliseconds(50);
  while (!stopping_) {
    try {
      // No reply timeout: the feed waits for messages as long as none come.
      auto connection = std::make_unique<RedisConnection>(
          client.address(), client.options().connect_timeout, std::nullopt);
      RedisConnection* feed = nullptr;
      {
        std::lock_guard lock(feed_mutex_);
        if (stopping_)
          return;
        feed_connection_ = std::move(connection);
        feed = feed_connection_.get();
      }
      const Reply subscribed = feed->command({"SUBSCRIBE", channel});
      if (subscribed.is_error())
        throw RedisUnavailable("SUBSCRIBE refused: " + subscribed.text);
      {
        std::lock_guard lock(watches_mutex_);
        feed_connected_ = true;
      }
      spdlog::info("redis: live feed subscribed on {}", script_->client().address().describe());
      backoff = std::chrono::milliseconds(50);
      resync_owned();
      while (true) {
        const Reply pushed = feed->next_reply();
        if (pushed.type == Reply::Type::array && pushed.elements.size() == 3 &&
            pushed.elements[0].text == "message") {
          handle_feed_message(pushed.elements[2].text);
        }
      }
    } catch (const std::exception& error) {
      if (!stopping_)
        spdlog::warn("redis: live feed lost: {}", error.what());
    }
    {
      std::lock_guard lock(feed_mutex_);
      feed_connection_.reset();
    }
    lose_feed();
    std::unique_lock lock(feed_mutex_);
    feed_retry_.wait_for(lock, backoff, [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

void RedisSessionPool::handle_feed_message(const std::string& payload) {
  // The session id is the array's first string: messages of sessions nobody here follows or
  // owns are skipped without parsing the rest.
  const auto id_end = payload.find('"', 2);
  if (payload.size() < 3 || id_end == std::string::npos)
    return;
  const std::string session_id = payload.substr(2, id_end - 2);
  OwnedWork work;
  try {
    std::optional<boost::json::array> message;
    {
      std::lock_guard lock(owned_mutex_);
      if (owned_.contains(session_id)) {
        message = boost::json::parse(payload).as_array();
        route_to_owned(session_id, *message, work);
      }
    }
    std::lock_guard lock(watches_mutex_);
    if (const auto found = watches_.find(session_id); found != watches_.end()) {
      Watch& watch = found->second;
      if (!watch.seeded) {
        watch.early_messages.push_back(payload);
      } else {
        try {
          if (!message)
            message = boost::json::parse(payload).as_array();
          apply_feed_message_locked(watch, *message);
        } catch (const std::exception& error) {
          spdlog::error("redis: malformed feed message: {}", error.what());
          watch.lost = true;
        }
        notify_locked(watch);
      }
    }
  } catch (const std::exception& error) {
    spdlog::error("redis: malformed feed message: {}", error.what());
  }
  run_owned_work(std::move(work));
}

void RedisSessionPool::route_to_owned(const std::string& session_id,
                                      const boost::json::array& message, OwnedWork& work) {
  auto found = owned_.find(session_id);
  if (found == owned_.end())
    return;
  if (const auto* event = message.at(6).if_array(); event != nullptr && event->size() == 4) {
    const auto sequence_id = static_cast<std::uint64_t>(json_integer(event->at(0)));
    if (sequence_id > found->second.seen_through) {
      found->second.seen_through = sequence_id;
      if (event->at(1).as_string() == core::event_types::followup)
        work.followups.emplace_back(session_id, std::string(event->at(2).as_string()));
    }
  }
  const auto status = core::session_status_from_string(message.at(2).as_string());
  if (status && core::is_terminal(*status)) {
    core::SessionSnapshot session;
    session.session_id = session_id;
    session.workspace_id = std::string(message.at(1).as_string());
    session.status = *status;
    session.started_unix_ms = json_integer(message.at(3));
    session.last_activity_unix_ms = json_integer(message.at(4));
    session.queued_followups = static_cast<std::size_t>(json_integer(message.at(5)));
    work.ended.push_back(std::move(session));
    owned_.erase(found);
  }
}

void RedisSessionPool::run_owned_work(OwnedWork work) {
  if (work.followups.empty() && work.ended.empty())
    return;
  // Called under the lock, so that once a listener is replaced (e.g. cleared at shutdown) no
  // call to the old one is still running.
  std::lock_guard lock(listeners_mutex_);
  for (const auto& [session_id, message] : work.followups) {
    if (followup_listener_)
      followup_listener_(session_id, message);
  }
  for (const auto& session : work.ended) {
    if (end_listener_)
      end_listener_(session);
  }
}

void RedisSessionPool::resync_owned() {
  std::vector<std::pair<std::string, std::uint64_t>> owned;
  {
    std::lock_guard lock(owned_mutex_);
    for (const auto& [id, state] : owned_)
      owned.emplace_back(id, state.seen_through);
  }
  for (const auto& [id, seen_through] : owned) {
    // What the feed missed while it was down: follow-ups to hand over, or the session's end.
    const bridge::Replay missed = replay(id, seen_through, limits_.max_events_per_session);
    OwnedWork work;
    {
      std::lock_guard lock(owned_mutex_);
      auto found = owned_.find(id);
      if (found == owned_.end())
        continue;
      for (const auto& retained : missed.events) {
        const core::SessionEvent& event = retained->event;
        if (event.sequence_id <= found->second.seen_through)
          continue;
        found->second.seen_through = event.sequence_id;
        if (event.event_type == core::event_types::followup)
          work.followups.emplace_back(id, event.message);
      }
      if (core::is_terminal(missed.session.status)) {
        work.ended.push_back(missed.session);
        owned_.erase(found);
      }
    }
    run_owned_work(std::move(work));
  }
}

void RedisSessionPool::lose_feed() {
  std::lock_guard lock(watches_mutex_);
  feed_connected_ = false;
  for (auto& [id, watch] : watches_) {
    watch.lost = true;
    notify_locked(watch);
  }
}

bridge::EndResult RedisSessionPool::end(std::string_view session_id, SessionStatus status) {
  const Reply reply =
      run("end", {std::string(session_id), std::string(core::to_string(status))}, true);
  return bridge::EndResult{snapshot_of(element(reply, 1)), 0};
}

bridge::EndResult RedisSessionPool::close(std::string_view session_id) {
  return end(session_id, SessionStatus::closed);
}

bridge::EndResult RedisSessionPool::end_session(std::string_view session_id,
                                                SessionStatus terminal_status) {
  return end(session_id, terminal_status);
}

bridge::ReapResult RedisSessionPool::reap(std::int64_t now_unix_ms) {
  const Reply reply = run("reap", {}, true, now_unix_ms);
  bridge::ReapResult result;
  for (const Reply& snapshot : element(reply, 1).elements)
    result.reaped.push_back(snapshot_of(snapshot));
  sessions_reaped_ += result.reaped.size();
  result.runtime = bridge::RuntimeInfo{static_cast<std::size_t>(integer_of(element(reply, 2))),
                                       limits_.inactivity_timeout_ms, limits_.max_active_sessions,
                                       limits_.max_events_per_session};
  return result;
}

std::size_t RedisSessionPool::purge_ended(std::int64_t now_unix_ms) {
  const std::int64_t cutoff = now_unix_ms - limits_.session_retention_ms;
  const Reply reply = run("purge", {std::to_string(cutoff)}, true);
  return static_cast<std::size_t>(integer_of(element(reply, 1)));
}

bridge::ListPage RedisSessionPool::list(const bridge::ListQuery& query) {
  const Reply reply =
      run("list",
          {query.status ? std::string(core::to_string(*query.status)) : std::string(),
           query.workspace_id.value_or(std::string()), std::to_string(query.limit),
           query.after ? std::to_string(query.after->last_activity_unix_ms) : std::string(),
           query.after ? query.after->session_id : std::string()},
          false);
  bridge::ListPage page;
  for (const Reply& snapshot : element(reply, 1).elements)
    page.sessions.push_back(snapshot_of(snapshot));
  if (page.sessions.size() > query.limit) {
    page.sessions.resize(query.limit);
    page.more = true;
  }
  return page;
}

bridge::RuntimeInfo RedisSessionPool::runtime() {
  const Reply reply = run("stats", {}, false);
  return bridge::RuntimeInfo{static_cast<std::size_t>(integer_of(element(reply, 1))),
                             limits_.inactivity_timeout_ms, limits_.max_active_sessions,
                             limits_.max_events_per_session};
}

bridge::PoolCounters RedisSessionPool::counters() {
  bridge::PoolCounters counters;
  // Sessions by status are the shared pool's; the other counts are this gateway's.
  const Reply reply = run("stats", {}, false);
  const auto& counts = element(reply, 2).elements;
  for (std::size_t i = 0; i + 1 < counts.size(); i += 2) {
    const auto status = core::session_status_from_string(counts[i].text);
    if (status) {
      counters.sessions_by_status[core::status_index(*status)] =
          static_cast<std::size_t>(std::max<long long>(0, std::stoll(counts[i + 1].text)));
    }
  }
  counters.events_appended = events_appended_;
  counters.followups_queued = followups_queued_;
  counters.followups_drained = followups_drained_;
  counters.sessions_reaped = sessions_reaped_;
  return counters;
}

store::StoreInfo RedisSessionPool::store_info() {
  store::StoreInfo info;
  info.kind = "redis";
  info.path = script_->client().address().describe();
  info.durability = "redis";  // as Redis's own persistence is configured
  info.commits = changes_;
  info.failed = store_failed();
  return info;
}

bool RedisSessionPool::store_failed() const {
  return !feed_connected_ || script_->client().unavailable();
}

}  // namespace tau::redis
