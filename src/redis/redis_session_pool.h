#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bridge/session_service.h"
#include "redis/owner_lease.h"
#include "redis/redis_client.h"
#include "redis/redis_feed.h"
#include "redis/redis_script.h"

namespace tau::redis {

// A session pool shared by every gateway on one Redis: each call is one Lua script
// (src/redis/gateway.lua) run atomically in Redis, so racing opens of a workspace on
// several gateways yield one session and the active-session limit holds across all of them.
//
// Live followers are served by the feed (redis_feed.h), which keeps a window of each followed
// session's newest events, so `events_after` never waits on the network; if the feed breaks,
// every follower is told (`feed_lost`) and its stream ends. The owner lease (owner_lease.h)
// fails the sessions of a gateway that went away.
//
// Calls block on the network (`calls_block()`): never make them from an I/O thread, except
// `events_after` and `unfollow`. A call that cannot reach Redis throws
// core::Error(store_unavailable) at once, without waiting for a timeout while Redis is known to
// be down. A change is acknowledged when Redis has applied it; it survives Redis's own restart
// as far as Redis's persistence (appendonly, appendfsync) is configured to keep it.
struct RedisPoolSettings {
  std::string prefix = "tau:gw:";  // of every key and of the feed channel
  // This gateway, as the owner of the sessions whose workers it runs; random when empty.
  std::string gateway_id;
  // How long an owner's lease lasts without renewal (renewed every third of it): once it has
  // expired, any gateway fails the owner's running sessions with a `gateway.owner_lost` event.
  std::int64_t owner_lease_ms = 15000;
};

class RedisSessionPool final : public bridge::SessionService {
 public:
  using IdGenerator = std::function<std::string()>;

  // Takes this gateway's lease (throws core::Error(store_unavailable) when Redis is down), then
  // starts the feed's subscription and the lease's renewal threads.
  RedisSessionPool(std::shared_ptr<RedisScript> script, RedisPoolSettings settings,
                   bridge::PoolLimits limits, core::Clock clock, core::EventEncoder encoder,
                   IdGenerator id_generator = nullptr);
  ~RedisSessionPool() override;
  RedisSessionPool(const RedisSessionPool&) = delete;
  RedisSessionPool& operator=(const RedisSessionPool&) = delete;

  // Told when a session whose worker runs here ends, on whichever gateway it ended.
  void set_end_listener(EndListener listener) override {
    feed_.set_end_listener(std::move(listener));
  }
  void set_followup_listener(FollowupListener listener) override {
    feed_.set_followup_listener(std::move(listener));
  }
  bool routes_followups() const override { return true; }
  bridge::OpenResult open(std::string_view workspace_id, bool with_worker) override;
  void discard(std::string_view session_id) override;
  core::SessionSnapshot get(std::string_view session_id) override;
  bridge::AppendResult append_progress(std::string_view session_id,
                                       std::string_view message) override;
  bool append_progress_async(std::string_view session_id, std::string_view message,
                             AppendDone done) override;
  bridge::AppendResult append_followup(std::string_view session_id,
                                       std::string_view message) override;
  using SessionService::append_event;
  bridge::AppendResult append_event(std::string_view session_id, std::string_view event_type,
                                    std::string_view message, std::string_view data) override;
  void append_events(std::string_view session_id, const std::vector<NewEvent>& events) override;
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
                                core::SessionStatus terminal_status) override;
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
  bool feed_connected() const { return feed_.connected(); }
  // Commands sent to Redis whose replies have not come yet.
  std::size_t redis_in_flight() const { return script_->client().in_flight(); }

 private:
  // Runs one operation of the script at `now` (the clock's time when absent). `changes`: it may
  // write, so it is timed and counted as a commit.
  Reply run(const char* operation, std::vector<std::string> arguments, bool changes,
            std::optional<std::int64_t> now = std::nullopt);
  // The script's {'error', code, ...} as the core::Error it stands for; the reply otherwise.
  Reply checked_reply(Reply reply) const;
  // Times a call that may have changed something, and counts it as a commit.
  void count_change(std::chrono::steady_clock::time_point started);
  bridge::AppendResult append(std::string_view session_id, std::string_view event_type,
                              std::string_view message, bool require_running, bool queue,
                              std::string_view data = {});
  // The script's arguments for an append, and what its reply says was appended (`event` without
  // its sequence id).
  std::vector<std::string> append_arguments(std::string_view session_id,
                                            std::string_view event_type, std::string_view message,
                                            bool require_running, bool queue,
                                            std::string_view data) const;
  bridge::AppendResult appended(const Reply& reply, core::SessionEvent event, bool queue);
  bridge::EndResult end(std::string_view session_id, core::SessionStatus status);
  // The replay's events, encoded once: those the feed's watch holds keep their encoding.
  std::vector<core::SharedEvent> retained_events(std::string_view session_id, std::uint64_t after,
                                                 std::size_t limit, const Reply& entries);

  const std::shared_ptr<RedisScript> script_;
  const RedisPoolSettings settings_;
  const std::string& prefix_ = settings_.prefix;
  const bridge::PoolLimits limits_;
  const core::Clock clock_;
  const core::EventEncoder encoder_;
  const IdGenerator id_generator_;
  metrics::Histogram call_seconds_;
  std::atomic<std::uint64_t> changes_{0};

  std::atomic<std::uint64_t> events_appended_{0};
  std::atomic<std::uint64_t> followups_queued_{0};
  std::atomic<std::uint64_t> followups_drained_{0};
  std::atomic<std::uint64_t> sessions_reaped_{0};

  // Last: their threads call the members above, so they stop before those go.
  RedisFeed feed_;
  OwnerLease lease_;
};

}  // namespace tau::redis
