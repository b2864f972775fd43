#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bridge/session_service.h"
#include "redis/redis_client.h"

namespace tau::redis {

struct RedisPoolOptions {
  RedisAddress address;
  std::string prefix = "tau:gw:";  // every key and the feed channel start with it
  RedisClient::Options client;
};

// A session pool shared by every gateway on one Redis: each call is one Lua script
// (src/redis/session_pool.lua) run atomically in Redis, so racing opens of a workspace on
// several gateways yield one session and the active-session limit holds across all of them.
//
// Live followers: every change is published on one channel; each gateway keeps one
// subscription (a thread of its own) and fans the messages out to its local followers from an
// in-memory window of each followed session's newest events, so `events_after` never waits on
// the network. If the subscription breaks, every follower is told (`feed_lost`) and its stream
// ends; the client resumes from its last id once Redis is back.
//
// Calls block on the network (`calls_block()`): never make them from an I/O thread, except
// `events_after` and `unfollow`. A call that cannot reach Redis throws
// BridgeError(store_unavailable) at once, without waiting for a timeout while Redis is known to
// be down. A change is acknowledged when Redis has applied it; it survives Redis's own restart
// as far as Redis's persistence (appendonly, appendfsync) is configured to keep it.
class RedisSessionPool final : public bridge::SessionService {
 public:
  using IdGenerator = std::function<std::string()>;

  // Loads the script and starts the subscription; throws RedisUnavailable if Redis cannot be
  // reached at start-up.
  RedisSessionPool(RedisPoolOptions options, bridge::PoolLimits limits, bridge::Clock clock,
                   bridge::EventEncoder encoder, IdGenerator id_generator = nullptr);
  ~RedisSessionPool() override;
  RedisSessionPool(const RedisSessionPool&) = delete;
  RedisSessionPool& operator=(const RedisSessionPool&) = delete;

  void set_end_listener(EndListener listener) override { end_listener_ = std::move(listener); }
  bridge::OpenResult open(std::string_view workspace_id, bool with_worker) override;
  void discard(std::string_view session_id) override;
  bridge::SessionSnapshot get(std::string_view session_id) override;
  bridge::AppendResult append_progress(std::string_view session_id,
                                       std::string_view message) override;
  bridge::AppendResult append_followup(std::string_view session_id,
                                       std::string_view message) override;
  bridge::AppendResult append_event(std::string_view session_id, std::string_view event_type,
                                    std::string_view message) override;
  bridge::DrainResult drain_followups(std::string_view session_id, std::size_t limit) override;
  bridge::Replay replay(std::string_view session_id, std::optional<std::uint64_t> after_sequence_id,
                        std::size_t limit) override;
  bridge::FollowStart follow(std::string_view session_id,
                             std::optional<std::uint64_t> after_sequence_id, std::size_t limit,
                             std::shared_ptr<bridge::SessionFollower> follower) override;
  bridge::FollowUpdate events_after(std::string_view session_id, std::uint64_t after_sequence_id,
                                    std::size_t max_events) override;
  void unfollow(std::string_view session_id, const bridge::SessionFollower* follower) override;
  bridge::EndResult close(std::string_view session_id) override;
  bridge::EndResult end_session(std::string_view session_id,
                                bridge::SessionStatus terminal_status) override;
  bridge::ReapResult reap(std::int64_t now_unix_ms) override;
  std::size_t purge_ended(std::int64_t now_unix_ms) override;
  bridge::ListPage list(const bridge::ListQuery& query) override;

  bridge::RuntimeInfo runtime() override;
  bridge::PoolCounters counters() override;
  const bridge::PoolLimits& limits() const override { return limits_; }
  std::int64_t now() const override { return clock_(); }

  // Redis has applied a change when its script returns: nothing waits for a ticket.
  store::Ticket durable_ticket() const override { return 0; }
  void when_durable(store::Ticket, std::function<void(bool)> done) override { done(true); }
  store::StoreInfo store_info() override;
  bool store_failed() const override;
  const metrics::Histogram& commit_seconds() const override { return call_seconds_; }
  bool calls_block() const override { return true; }

  // Whether the live feed's subscription is up (for tests and readiness).
  bool feed_connected() const { return feed_connected_.load(); }

 private:
  // A followed session as this gateway knows it from the feed: its newest retained events and
  // its latest state. Filled from Redis once, when its first follower arrives; kept up to date
  // by the feed thread while anyone follows it.
  struct Watch {
    std::vector<std::shared_ptr<bridge::SessionFollower>> followers;
    bool seeded = false;
    bool lost = false;  // the feed broke or skipped a change: its followers must start over
    std::deque<bridge::SharedEvent> events;  // consecutive ids, at most max_events_per_session
    std::uint64_t known_through = 0;         // the newest sequence id applied
    std::uint64_t encoded_bytes_total = 0;
    bridge::SessionSnapshot session;
    // Feed messages that arrived before the seed (applied after it, skipping what it held).
    std::vector<std::string> early_messages;
  };

  // Runs one operation of the script at `now` (the clock's time when absent). `changes`: it may
  // write, so it is timed and counted as a commit.
  Reply run(const char* operation, std::vector<std::string> arguments, bool changes,
            std::optional<std::int64_t> now = std::nullopt);
  bridge::AppendResult append(std::string_view session_id, std::string_view event_type,
                              std::string_view message, bool require_running, bool queue);
  bridge::EndResult end(std::string_view session_id, bridge::SessionStatus status);
  bridge::SharedEvent retain(Watch& watch, bridge::SessionEvent event) const;
  void apply_feed_message_locked(Watch& watch, const std::string& payload);
  void notify_locked(Watch& watch);
  void run_feed();
  void lose_feed();

  const RedisPoolOptions options_;
  const bridge::PoolLimits limits_;
  const bridge::Clock clock_;
  const bridge::EventEncoder encoder_;
  const IdGenerator id_generator_;
  EndListener end_listener_;
  RedisClient client_;
  std::string script_sha_;
  std::mutex script_mutex_;  // guards script_sha_ while it is reloaded
  metrics::Histogram call_seconds_;
  std::atomic<std::uint64_t> changes_{0};

  std::atomic<std::uint64_t> events_appended_{0};
  std::atomic<std::uint64_t> followups_queued_{0};
  std::atomic<std::uint64_t> followups_drained_{0};
  std::atomic<std::uint64_t> sessions_reaped_{0};

  std::mutex watches_mutex_;
  std::unordered_map<std::string, Watch> watches_;

  std::atomic<bool> feed_connected_{false};
  std::atomic<bool> stopping_{false};
  std::mutex feed_mutex_;  // guards feed_connection_ for shut_down() from the destructor
  std::condition_variable feed_retry_;
  std::unique_ptr<RedisConnection> feed_connection_;
  std::thread feed_thread_;
};

}  // namespace tau::redis
