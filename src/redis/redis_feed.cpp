#include "redis/redis_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "redis/redis_script.h"

namespace tau::redis {

RedisFeed::RedisFeed(RedisClient& client, std::string channel, std::size_t max_events_per_session,
                     const core::EventEncoder* encoder, Reader read)
    : client_(client),
      channel_(std::move(channel)),
      max_events_(max_events_per_session),
      encoder_(encoder),
      read_(std::move(read)) {}

RedisFeed::~RedisFeed() {
  {
    std::lock_guard lock(connection_mutex_);
    stopping_ = true;
    if (connection_)
      connection_->shut_down();
  }
  retry_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void RedisFeed::start() {
  thread_ = std::thread([this] { run(); });
}

bool RedisFeed::wait_connected(std::chrono::milliseconds timeout) {
  std::unique_lock lock(watches_mutex_);
  return connected_changed_.wait_for(lock, timeout, [this] { return connected_.load(); });
}

void RedisFeed::set_end_listener(bridge::SessionService::EndListener listener) {
  std::lock_guard lock(listeners_mutex_);
  end_listener_ = std::move(listener);
}

void RedisFeed::set_followup_listener(bridge::SessionService::FollowupListener listener) {
  std::lock_guard lock(listeners_mutex_);
  followup_listener_ = std::move(listener);
}

void RedisFeed::own(const std::string& session_id) {
  std::lock_guard lock(owned_mutex_);
  owned_.emplace(session_id, Owned{});
}

void RedisFeed::disown(std::string_view session_id) {
  std::lock_guard lock(owned_mutex_);
  owned_.erase(std::string(session_id));
}

// --- watches ----------------------------------------------------------------------------------

bridge::FollowStart RedisFeed::follow(std::string_view session_id,
                                      std::optional<std::uint64_t> after_sequence_id,
                                      std::size_t limit,
                                      std::shared_ptr<bridge::SessionFollower> follower) {
  const std::string id(session_id);
  const bridge::SessionFollower* follower_key = follower.get();
  {
    // Registered before the session is read, so a change made after the read reaches the
    // watch through the feed (held back until the seed is in).
    std::lock_guard lock(watches_mutex_);
    if (!connected_)
      throw store_unavailable_error();
    auto [watch, _] = watches_.try_emplace(id, max_events_, encoder_);
    watch->second.followers.add(std::move(follower));
  }
  try {
    const bridge::Replay stored = read_(id, std::nullopt, max_events_);
    std::lock_guard lock(watches_mutex_);
    Watch& watch = watches_.at(id);
    if (watch.lost)
      throw store_unavailable_error();
    if (!watch.seeded)
      seed_locked(watch, stored);
    return bridge::FollowStart{
        bridge::replay_of(watch.window, visible_of(watch), watch.session, after_sequence_id, limit),
        watch.window.last_id()};
  } catch (...) {
    unfollow(id, follower_key);
    throw;
  }
}

bridge::FollowUpdate RedisFeed::events_after(std::string_view session_id,
                                             std::uint64_t after_sequence_id,
                                             std::size_t max_events) {
  std::lock_guard lock(watches_mutex_);
  const auto found = watches_.find(std::string(session_id));
  if (found == watches_.end() || found->second.lost || !found->second.seeded) {
    bridge::FollowUpdate update;
    update.feed_lost = true;
    return update;
  }
  const Watch& watch = found->second;
  return bridge::follow_update(watch.window, visible_of(watch), watch.session, after_sequence_id,
                               max_events);
}

void RedisFeed::unfollow(std::string_view session_id, const bridge::SessionFollower* follower) {
  std::lock_guard lock(watches_mutex_);
  const auto found = watches_.find(std::string(session_id));
  if (found == watches_.end())
    return;
  found->second.followers.remove(follower);
  if (found->second.followers.empty())
    watches_.erase(found);
}

std::vector<core::SharedEvent> RedisFeed::held_events(std::string_view session_id,
                                                      std::uint64_t after, std::size_t limit) {
  std::lock_guard lock(watches_mutex_);
  const auto found = watches_.find(std::string(session_id));
  if (found == watches_.end() || found->second.lost || !found->second.seeded)
    return {};
  return found->second.window.slice(after, limit);
}

void RedisFeed::seed_locked(Watch& watch, const bridge::Replay& stored) {
  // The events come encoded from the read: the window keeps their encoding.
  for (const auto& retained : stored.events)
    watch.window.append(retained->event, retained->encoded);
  watch.window.advance_to(stored.last_sequence_id);
  watch.session = stored.session;
  watch.seeded = true;
  for (const FeedMessage& message : watch.early_messages)
    apply_locked(watch, message);
  watch.early_messages.clear();
}

void RedisFeed::deliver_locked(Watch& watch, const std::optional<FeedMessage>& message) {
  if (!message) {
    watch.lost = true;  // what it said is unknown: its followers must resume from Redis
  } else if (!watch.seeded) {
    watch.early_messages.push_back(*message);
    return;
  } else {
    apply_locked(watch, *message);
  }
  watch.followers.notify_all(watch.window.encoded_bytes_total());
}

void RedisFeed::apply_locked(Watch& watch, const FeedMessage& message) {
  watch.session = message.session;
  if (!message.event)
    return;  // a change of state only
  const std::uint64_t sequence_id = message.event->sequence_id;
  if (sequence_id <= watch.window.last_id())
    return;  // the seed already held it
  if (sequence_id != watch.window.last_id() + 1) {
    watch.lost = true;  // a change went missing: its followers must resume from Redis
    return;
  }
  watch.window.append(*message.event);
}

bridge::VisiblePart RedisFeed::visible_of(const Watch& watch) {
  // Everything applied is visible: Redis has applied a change before it is published.
  return bridge::everything(watch.window, core::is_terminal(watch.session.status));
}

// --- the subscription -------------------------------------------------------------------------

void RedisFeed::run() {
  auto backoff = std::chrono::milliseconds(50);
  while (!stopping_) {
    try {
      listen();
      backoff = std::chrono::milliseconds(50);  // it was up
    } catch (const std::exception& error) {
      if (!stopping_)
        spdlog::warn("redis: live feed lost: {}", error.what());
    }
    {
      std::lock_guard lock(connection_mutex_);
      connection_.reset();
    }
    lose();
    std::unique_lock lock(connection_mutex_);
    retry_.wait_for(lock, backoff, [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

void RedisFeed::listen() {
  // No reply timeout: the feed waits for messages as long as none come.
  auto connection = std::make_unique<RedisConnection>(
      client_.address(), client_.options().connect_timeout, std::nullopt);
  RedisConnection* feed = nullptr;
  {
    std::lock_guard lock(connection_mutex_);
    if (stopping_)
      return;
    connection_ = std::move(connection);
    feed = connection_.get();
  }
  const Reply subscribed = feed->command({"SUBSCRIBE", channel_});
  if (subscribed.is_error())
    throw RedisUnavailable("SUBSCRIBE refused: " + subscribed.text);
  {
    std::lock_guard lock(watches_mutex_);
    connected_ = true;
  }
  connected_changed_.notify_all();
  spdlog::info("redis: live feed subscribed on {}", client_.address().describe());
  resync_owned();
  while (true) {
    const Reply pushed = feed->next_reply();
    if (pushed.type == Reply::Type::array && pushed.elements.size() == 3 &&
        pushed.elements[0].text == "message") {
      handle(pushed.elements[2].text);
    }
  }
}

void RedisFeed::handle(const std::string& payload) {
  // Messages of sessions nobody here follows or owns are skipped without decoding the rest.
  const std::optional<std::string> session_id = feed_session_id(payload);
  if (!session_id) {
    spdlog::error("redis: a feed message without a session id");
    return;
  }
  std::optional<FeedMessage> message;
  bool decoded = false;
  const auto decode = [&]() -> const std::optional<FeedMessage>& {
    if (!std::exchange(decoded, true)) {
      message = decode_feed_message(payload);
      if (!message)
        spdlog::error("redis: malformed feed message for session {}", *session_id);
    }
    return message;
  };
  OwnedWork work;
  {
    std::lock_guard lock(owned_mutex_);
    if (const auto found = owned_.find(*session_id); found != owned_.end() && decode())
      route_locked(found, *message, work);
  }
  {
    std::lock_guard lock(watches_mutex_);
    if (const auto found = watches_.find(*session_id); found != watches_.end())
      deliver_locked(found->second, decode());
  }
  run_owned_work(work);
}

void RedisFeed::lose() {
  std::lock_guard lock(watches_mutex_);
  connected_ = false;
  for (auto& [id, watch] : watches_) {
    watch.lost = true;
    watch.followers.notify_all(watch.window.encoded_bytes_total());
  }
}

// --- owned sessions ---------------------------------------------------------------------------

void RedisFeed::hand_over(const std::string& session_id, Owned& owned,
                          const core::SessionEvent& event, OwnedWork& work) {
  if (event.sequence_id <= owned.seen_through)
    return;  // handed over already
  owned.seen_through = event.sequence_id;
  if (event.event_type == core::event_types::followup)
    work.followups.emplace_back(session_id, event.message);
}

void RedisFeed::route_locked(std::unordered_map<std::string, Owned>::iterator owned,
                             const FeedMessage& message, OwnedWork& work) {
  if (message.event)
    hand_over(owned->first, owned->second, *message.event, work);
  if (core::is_terminal(message.session.status)) {
    work.ended.push_back(message.session);
    owned_.erase(owned);
  }
}

void RedisFeed::run_owned_work(const OwnedWork& work) {
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

void RedisFeed::resync_owned() {
  std::vector<std::pair<std::string, std::uint64_t>> owned;
  {
    std::lock_guard lock(owned_mutex_);
    for (const auto& [id, state] : owned_)
      owned.emplace_back(id, state.seen_through);
  }
  for (const auto& [id, seen_through] : owned) {
    // What the feed missed while it was down: follow-ups to hand over, or the session's end.
    const bridge::Replay missed = read_(id, seen_through, max_events_);
    OwnedWork work;
    {
      std::lock_guard lock(owned_mutex_);
      const auto found = owned_.find(id);
      if (found == owned_.end())
        continue;
      for (const auto& retained : missed.events)
        hand_over(id, found->second, retained->event, work);
      if (core::is_terminal(missed.session.status)) {
        work.ended.push_back(missed.session);
        owned_.erase(found);
      }
    }
    run_owned_work(work);
  }
}

}  // namespace tau::redis
