#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bridge/event_window.h"
#include "bridge/follower_set.h"
#include "bridge/session_service.h"
#include "redis/feed_message.h"
#include "redis/redis_client.h"

namespace tau::redis {

// The live side of a Redis session pool. Every change is published on one channel (the
// script's `publish`); this keeps one subscription to it, on a thread of its own, and hands
// each message to
// - the watches: a window of the newest events and the latest state of each session followed
//   here, filled from Redis when its first follower arrives, so `events_after` never waits on
//   the network;
// - the workers of the sessions this gateway owns (their follow-ups, and their end).
// If the subscription breaks, every watch is lost (its followers are told and their streams
// end; clients resume from their last id once Redis is back), and the owned sessions' workers
// are handed what they missed once it is up again. Thread-safe.
class RedisFeed {
 public:
  // Reads a session from Redis as the pool's `replay` does: to seed a watch, and to catch up
  // an owned session after the feed was down. Called with no lock of the feed held.
  using Reader = std::function<bridge::Replay(
      std::string_view session_id, std::optional<std::uint64_t> after, std::size_t limit)>;

  // `encoder` must outlive the feed. Nothing runs until start().
  RedisFeed(RedisClient& client, std::string channel, std::size_t max_events_per_session,
            const core::EventEncoder* encoder, Reader read);
  // Stops the subscription's thread (it may be reading through `read` meanwhile).
  ~RedisFeed();
  RedisFeed(const RedisFeed&) = delete;
  RedisFeed& operator=(const RedisFeed&) = delete;

  // Starts the subscription's thread (once).
  void start();
  // Whether the subscription is up.
  bool connected() const { return connected_.load(); }
  // Waits until the subscription is up, at most `timeout`; whether it is. Start-up waits here,
  // so the first requests served (a stream, a readiness probe) do not race the first SUBSCRIBE.
  bool wait_connected(std::chrono::milliseconds timeout);

  // Listeners for the sessions owned here: set and called under one lock, so once replaced no
  // call to the old one is still running. They must not set listeners.
  void set_end_listener(bridge::SessionService::EndListener listener);
  void set_followup_listener(bridge::SessionService::FollowupListener listener);
  // A session whose worker runs here (or no longer does).
  void own(const std::string& session_id);
  void disown(std::string_view session_id);

  // The pool's `follow`, `events_after` and `unfollow` (see SessionService).
  bridge::FollowStart follow(std::string_view session_id,
                             std::optional<std::uint64_t> after_sequence_id, std::size_t limit,
                             std::shared_ptr<bridge::SessionFollower> follower);
  bridge::FollowUpdate events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                                    std::size_t max_events);
  void unfollow(std::string_view session_id, const bridge::SessionFollower* follower);
  // The events after `after` (at most `limit`) that the session's watch holds, already encoded;
  // none when it is not watched here.
  std::vector<core::SharedEvent> held_events(std::string_view session_id, std::uint64_t after,
                                             std::size_t limit);

 private:
  // A followed session as this gateway knows it from the feed.
  struct Watch {
    Watch(std::size_t max_events, const core::EventEncoder* encoder)
        : window(max_events, encoder) {}
    bridge::FollowerSet followers;
    bool seeded = false;
    bool lost = false;  // the feed broke or skipped a change: its followers must start over
    bridge::EventWindow window;
    core::SessionSnapshot session;
    // Messages that arrived before the seed (applied after it, skipping what it held).
    std::vector<FeedMessage> early_messages;
  };
  // A session whose worker runs here: what the feed has handed its worker so far.
  struct Owned {
    std::uint64_t seen_through = 0;  // the newest event id the feed reported
  };
  // What a message asks of this process once the feed's locks are released.
  struct OwnedWork {
    std::vector<std::pair<std::string, std::string>> followups;  // (session id, message)
    std::vector<core::SessionSnapshot> ended;
  };

  void run();
  // Connects, subscribes and hands over messages until the connection breaks (throws) or the
  // feed stops (returns).
  void listen();
  void handle(const std::string& payload);
  void seed_locked(Watch& watch, const bridge::Replay& stored);
  void deliver_locked(Watch& watch, const std::optional<FeedMessage>& message);
  static void apply_locked(Watch& watch, const FeedMessage& message);
  static bridge::VisiblePart visible_of(const Watch& watch);
  // An event of an owned session: a follow-up not handed over yet goes to its worker.
  static void hand_over(const std::string& session_id, Owned& owned,
                        const core::SessionEvent& event, OwnedWork& work);
  void route_locked(std::unordered_map<std::string, Owned>::iterator owned,
                    const FeedMessage& message, OwnedWork& work);
  void run_owned_work(const OwnedWork& work);
  // After (re)subscribing: hands owned sessions' workers what the feed missed meanwhile.
  void resync_owned();
  void lose();

  RedisClient& client_;
  const std::string channel_;
  const std::size_t max_events_;
  const core::EventEncoder* const encoder_;
  const Reader read_;

  std::mutex listeners_mutex_;
  bridge::SessionService::EndListener end_listener_;
  bridge::SessionService::FollowupListener followup_listener_;

  // Set under watches_mutex_, so that a follow() registering under it sees it true, or is lost
  // with every other watch when it turns false.
  std::atomic<bool> connected_{false};
  std::mutex watches_mutex_;
  std::condition_variable connected_changed_;  // with watches_mutex_
  std::unordered_map<std::string, Watch> watches_;

  std::mutex owned_mutex_;
  std::unordered_map<std::string, Owned> owned_;

  std::atomic<bool> stopping_{false};
  std::mutex connection_mutex_;  // guards connection_ for the destructor's shut_down()
  std::condition_variable retry_;
  std::unique_ptr<RedisConnection> connection_;
  std::thread thread_;
};

}  // namespace tau::redis
