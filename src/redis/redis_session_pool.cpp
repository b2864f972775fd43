#include "redis/redis_session_pool.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include <spdlog/spdlog.h>

#include "core/errors.h"
#include "core/random_id.h"

namespace tau::redis {

using core::SessionSnapshot;
using core::SessionStatus;

namespace {

constexpr std::chrono::seconds kFeedStartupWait{10};

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
      call_seconds_(metrics::Histogram::latency_seconds_bounds()),
      feed_(script_->client(), prefix_ + "feed", limits_.max_events_per_session, &encoder_,
            [this](std::string_view session_id, std::optional<std::uint64_t> after,
                   std::size_t limit) { return replay(session_id, after, limit); }),
      lease_(
          [this](std::vector<std::string> arguments) {
            return run("lease", std::move(arguments), true);
          },
          settings_.gateway_id, settings_.owner_lease_ms, limits_.max_events_per_session) {
  feed_.start();
  // Bounded: if the feed is not up by then, the gateway still starts and /readyz says so until
  // it is (the reconnect loop keeps trying).
  if (!feed_.wait_connected(kFeedStartupWait))
    spdlog::warn("redis: the live feed is not subscribed yet; not ready until it is");
}

RedisSessionPool::~RedisSessionPool() = default;

Reply RedisSessionPool::run(const char* operation, std::vector<std::string> arguments, bool changes,
                            std::optional<std::int64_t> now) {
  arguments.insert(arguments.begin(), std::to_string(limits_.inactivity_timeout_ms));
  const auto started = std::chrono::steady_clock::now();
  Reply reply = script_->run(operation, prefix_, now.value_or(clock_()), std::move(arguments));
  if (changes)
    count_change(started);
  return checked_reply(std::move(reply));
}

void RedisSessionPool::count_change(std::chrono::steady_clock::time_point started) {
  call_seconds_.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  ++changes_;
}

Reply RedisSessionPool::checked_reply(Reply reply) const {
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
  Reply reply;
  do {
    // The script names a new session with the id given, unless a session has it already.
    reply =
        run("open",
            {std::string(workspace), id_generator_(), std::to_string(limits_.max_active_sessions),
             with_worker ? settings_.gateway_id : std::string()},
            true);
  } while (element(reply, 1).text == "taken");
  bridge::OpenResult result;
  result.created = element(reply, 1).text == "created";
  result.session = snapshot_of(element(reply, 2));
  if (result.created && with_worker)
    feed_.own(result.session.session_id);
  return result;
}

void RedisSessionPool::discard(std::string_view session_id) {
  feed_.disown(session_id);
  run("discard", {std::string(session_id)}, true);
}

SessionSnapshot RedisSessionPool::get(std::string_view session_id) {
  return snapshot_of(element(run("get", {std::string(session_id)}, false), 1));
}

std::vector<std::string> RedisSessionPool::append_arguments(std::string_view session_id,
                                                            std::string_view event_type,
                                                            std::string_view message,
                                                            bool require_running, bool queue,
                                                            std::string_view data) const {
  return {std::to_string(limits_.inactivity_timeout_ms),
          std::string(session_id),
          std::string(event_type),
          std::string(message),
          std::to_string(limits_.max_events_per_session),
          require_running ? "1" : "0",
          queue ? "1" : "0",
          std::string(data)};
}

bridge::AppendResult RedisSessionPool::appended(const Reply& reply, core::SessionEvent event,
                                                bool queue) {
  bridge::AppendResult result;
  result.session = snapshot_of(element(reply, 2));
  // Stamped with the time the script was given (an ended session's activity stays as it was).
  event.sequence_id = static_cast<std::uint64_t>(integer_of(element(reply, 1)));
  result.event = std::move(event);
  ++events_appended_;
  if (queue)
    ++followups_queued_;
  return result;
}

bridge::AppendResult RedisSessionPool::append(std::string_view session_id,
                                              std::string_view event_type, std::string_view message,
                                              bool require_running, bool queue,
                                              std::string_view data) {
  const std::int64_t now = clock_();
  const auto started = std::chrono::steady_clock::now();
  Reply reply =
      script_->run("append", prefix_, now,
                   append_arguments(session_id, event_type, message, require_running, queue, data));
  count_change(started);
  return appended(
      checked_reply(std::move(reply)),
      core::SessionEvent{0, std::string(event_type), std::string(message), now, std::string(data)},
      queue);
}

bool RedisSessionPool::append_progress_async(std::string_view session_id, std::string_view message,
                                             AppendDone done) {
  const std::string_view checked = core::checked_message(message);
  const std::int64_t now = clock_();
  const auto started = std::chrono::steady_clock::now();
  core::SessionEvent event{0, std::string(core::event_types::progress), std::string(checked), now,
                           ""};
  return script_->try_run_async(
      "append", prefix_, now,
      append_arguments(session_id, core::event_types::progress, checked, true, false, ""),
      [this, started, event = std::move(event), done = std::move(done)](std::exception_ptr error,
                                                                        Reply reply) mutable {
        // (An error touches nothing of the pool: it may be failing calls as it goes.)
        if (error) {
          done(std::move(error), {});
          return;
        }
        bridge::AppendResult result;
        std::exception_ptr failure;  // handed over once its catch is left (see RedisScript)
        try {
          count_change(started);
          result = appended(checked_reply(std::move(reply)), std::move(event), false);
        } catch (...) {
          failure = std::current_exception();
        }
        done(std::move(failure), std::move(result));
      });
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
                                                    std::string_view message,
                                                    std::string_view data) {
  return append(session_id, event_type, message, false, false, data);
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
    arguments.push_back(event.data);
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
  const std::uint64_t after = after_sequence_id.value_or(0);
  // The script's COUNT takes a signed 64-bit count.
  const std::size_t count = std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max());
  const Reply reply =
      run("replay", {std::string(session_id), std::to_string(after), std::to_string(count)}, false);
  bridge::Replay replay;
  replay.session = snapshot_of(element(reply, 1));
  replay.first_retained_sequence_id = static_cast<std::uint64_t>(integer_of(element(reply, 2)));
  replay.last_sequence_id = static_cast<std::uint64_t>(integer_of(element(reply, 3)));
  replay.events = retained_events(session_id, after, limit, element(reply, 4));
  // The bytes of what this read holds (a Redis replay knows nothing of the events before it).
  if (!replay.events.empty())
    replay.encoded_bytes_total = replay.events.back()->encoded_bytes_through;
  return replay;
}

std::vector<core::SharedEvent> RedisSessionPool::retained_events(std::string_view session_id,
                                                                 std::uint64_t after,
                                                                 std::size_t limit,
                                                                 const Reply& entries) {
  const std::vector<core::SharedEvent> held = feed_.held_events(session_id, after, limit);
  // Held events have consecutive ids; one with the same id and content is the same event.
  const auto encoded_by_feed = [&held](const core::SessionEvent& event) {
    std::optional<std::string> encoded;
    if (held.empty() || event.sequence_id < held.front()->event.sequence_id)
      return encoded;
    const std::uint64_t index = event.sequence_id - held.front()->event.sequence_id;
    if (index >= held.size())
      return encoded;
    const core::SessionEvent& known = held[index]->event;
    if (known.event_type == event.event_type && known.message == event.message &&
        known.timestamp_unix_ms == event.timestamp_unix_ms && known.data == event.data)
      encoded = held[index]->encoded;
    return encoded;
  };
  bridge::EventWindow window(entries.elements.size(), &encoder_);
  for (const Reply& entry : entries.elements) {
    core::SessionEvent event = event_of(entry);
    std::optional<std::string> encoded = encoded_by_feed(event);
    window.append(std::move(event), std::move(encoded));
  }
  return window.slice(0, entries.elements.size());
}

bridge::FollowStart RedisSessionPool::follow(std::string_view session_id,
                                             std::optional<std::uint64_t> after_sequence_id,
                                             std::size_t limit,
                                             std::shared_ptr<bridge::SessionFollower> follower) {
  return feed_.follow(session_id, after_sequence_id, limit, std::move(follower));
}

bridge::FollowUpdate RedisSessionPool::events_after(std::string_view session_id,
                                                    std::uint64_t after_sequence_id,
                                                    std::size_t max_events) {
  return feed_.events_after(session_id, after_sequence_id, max_events);
}

void RedisSessionPool::unfollow(std::string_view session_id,
                                const bridge::SessionFollower* follower) {
  feed_.unfollow(session_id, follower);
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
  // Only a terminal status ends a session; any other changes nothing.
  if (!core::is_terminal(terminal_status))
    return bridge::EndResult{get(session_id), 0};
  return end(session_id, terminal_status);
}

bridge::ReapResult RedisSessionPool::reap(std::int64_t now_unix_ms) {
  const Reply reply = run("reap", {}, true, now_unix_ms);
  bridge::ReapResult result;
  for (const Reply& snapshot : element(reply, 1).elements)
    result.reaped.push_back(snapshot_of(snapshot));
  sessions_reaped_ += result.reaped.size();
  result.runtime =
      bridge::runtime_info(limits_, static_cast<std::size_t>(integer_of(element(reply, 2))));
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
  return bridge::runtime_info(limits_, static_cast<std::size_t>(integer_of(element(reply, 1))));
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
  // The events live in Redis: none are held here against the budget.
  counters.event_memory_budget_bytes = limits_.max_event_memory_bytes;
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
  return !feed_.connected() || script_->client().unavailable();
}

}  // namespace tau::redis
