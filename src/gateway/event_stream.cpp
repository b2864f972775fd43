#include "gateway/event_stream.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <limits>
#include <memory>
#include <utility>

#include "gateway/api_error.h"
#include "gateway/json_codec.h"
#include "http/sse.h"

namespace tau::gateway {

namespace asio = boost::asio;
namespace json = boost::json;
namespace beast_http = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

// A follow stream whose write is blocked for max(this, 2 heartbeats) is cut off.
constexpr std::int64_t kMinWriteTimeoutMs = 1000;

// Events written per batch while catching up, to bound the size of one write.
constexpr std::size_t kBatchEvents = 256;

// Any cursor is valid: one past the newest event, up to the largest 64-bit one, means "after
// everything". The session service is handed at most this one (10^13 events, which no session
// comes near; with a larger one the Redis script's `after + 1`, a Lua number, is no longer
// printed as an integer), and the stream drops whatever it returns at or before the real cursor.
constexpr std::uint64_t kLargestServiceCursor = 10'000'000'000'000;

http::SseFrame frame(std::optional<std::string> id, std::string event, std::string data) {
  http::SseFrame result;
  result.id = std::move(id);
  result.event = std::move(event);
  result.data = std::move(data);
  return result;
}

json::object session_json(const core::SessionSnapshot& session, const StreamSettings& settings) {
  json::object result = to_json(session);
  if (settings.agent_of)
    result["agent"] = settings.agent_of(session.session_id);
  return result;
}

std::string snapshot_frame(const core::SessionSnapshot& session,
                           std::optional<std::uint64_t> cursor, std::optional<std::int64_t> retry,
                           const StreamSettings& settings) {
  json::object data{{"session", session_json(session, settings)}};
  data["replay_after_sequence_id"] = cursor ? json::value(*cursor) : json::value(nullptr);
  http::SseFrame snapshot =
      frame(std::nullopt, "external_coding_agent.snapshot", json::serialize(data));
  snapshot.retry_ms = retry;
  return http::serialize_sse(snapshot);
}

// Ends a follow stream whose live feed broke (a shared store's connection was lost).
std::string feed_lost_frame() {
  return http::serialize_sse(frame(
      std::nullopt, "error",
      json::serialize(error_envelope(503, "store_unavailable",
                                     "the live feed of the session store was lost; resume from "
                                     "the last event id"))));
}

std::string final_frames(const core::SessionSnapshot& session, const StreamSettings& settings) {
  json::object data{{"session", session_json(session, settings)}};
  return http::serialize_sse(
             frame(std::nullopt, "external_coding_agent.snapshot", json::serialize(data))) +
         http::serialize_sse(frame(std::nullopt, "done", "[DONE]"));
}

// The first block of every stream: retry and snapshot, the gap signal, and the replay.
std::string opening_frames(const bridge::Replay& replay, std::optional<std::uint64_t> cursor,
                           const StreamSettings& settings) {
  std::string frames = snapshot_frame(replay.session, cursor, settings.retry_ms, settings);
  // Events were lost when the first one kept comes after the one following the cursor (written
  // so that no cursor, however large, wraps around).
  if (cursor && replay.first_retained_sequence_id > 0 &&
      *cursor < replay.first_retained_sequence_id - 1) {
    json::object gap{{"requested_after_sequence_id", *cursor},
                     {"first_available_sequence_id", replay.first_retained_sequence_id}};
    frames +=
        http::serialize_sse(frame(std::nullopt, "external_coding_agent.gap", json::serialize(gap)));
  }
  for (const auto& retained : replay.events) {
    if (!cursor || retained->event.sequence_id > *cursor)
      frames += retained->encoded;
  }
  return frames;
}

// The bridge's view of one follow stream. The pool calls notify() from whichever thread appended;
// it only records and posts a wake-up to the stream's executor, where everything else happens.
class StreamFollower : public bridge::SessionFollower,
                       public std::enable_shared_from_this<StreamFollower> {
 public:
  StreamFollower(const asio::any_io_executor& executor, std::uint64_t max_backlog_bytes)
      : wake_timer_(executor), max_backlog_bytes_(max_backlog_bytes) {}

  void notify(std::uint64_t encoded_bytes_total) override {
    const std::uint64_t sent = bytes_sent_.load();
    const bool over_limit =
        encoded_bytes_total > sent && encoded_bytes_total - sent > max_backlog_bytes_;
    // The first overflow always posts: an earlier wake-up may have been spent while the stream
    // sat in a write, and only a new one can cut that write short.
    const bool newly_overflowed = over_limit && !overflowed_.exchange(true);
    if (wake_pending_.exchange(true) && !newly_overflowed)
      return;  // one is on its way already
    asio::post(wake_timer_.get_executor(), [weak = weak_from_this()] {
      if (auto self = weak.lock())
        self->wake();
    });
  }

  // Executor only. Called before reading the pool, so a notify() after it posts a new wake-up.
  void rearm() { wake_pending_ = false; }
  // Whether the pool released anything since rearm(): if not, reading it again finds nothing.
  bool notified_since_rearm() const { return wake_pending_; }
  void sent_through(std::uint64_t encoded_bytes_through) { bytes_sent_ = encoded_bytes_through; }
  bool overflowed() const { return overflowed_; }
  asio::steady_timer& wake_timer() { return wake_timer_; }
  // Executor only: the socket a stalled write is cut off on, once the stream is live.
  void attach(asio::ip::tcp::socket& socket) { socket_ = &socket; }
  // Executor only: the client closed its side (or sent something an event stream never expects).
  void peer_left() {
    peer_gone_ = true;
    wake_timer_.cancel();
  }
  bool peer_gone() const { return peer_gone_; }
  // Where the departure watch reads to: a byte that lives as long as the follower.
  asio::mutable_buffer departure_buffer() { return asio::buffer(&departure_byte_, 1); }
  // Executor only: the stream is over, the socket may go away. Stops the departure watch.
  void detach() {
    if (socket_ != nullptr) {
      boost::system::error_code ignored;
      socket_->cancel(ignored);
    }
    socket_ = nullptr;
  }

 private:
  void wake() {
    // A stalled reader leaves the stream stuck in a write: abort it rather than wait.
    if (overflowed_ && socket_ != nullptr) {
      boost::system::error_code ignored;
      socket_->cancel(ignored);
    }
    wake_timer_.cancel();
  }

  asio::ip::tcp::socket* socket_ = nullptr;
  asio::steady_timer wake_timer_;
  const std::uint64_t max_backlog_bytes_;
  // Unknown (and the backlog unchecked) until the stream knows where its replay ended.
  std::atomic<std::uint64_t> bytes_sent_{std::numeric_limits<std::uint64_t>::max()};
  std::atomic<bool> overflowed_{false};
  std::atomic<bool> wake_pending_{false};
  bool peer_gone_ = false;  // executor only
  char departure_byte_ = 0;
};

// Runs beside a follow stream for its whole life, so a departing client frees its stream at once
// without re-arming a read on every wake-up. Allocated exactly (not in one of Asio's recycled
// blocks, which may be much larger). Touches only the follower once the read completes: by then
// the stream may be over and its socket gone.
void watch_for_departure(asio::ip::tcp::socket& socket,
                         const std::shared_ptr<StreamFollower>& follower) {
  socket.async_read_some(
      follower->departure_buffer(),
      asio::bind_allocator(std::allocator<void>(),
                           [follower](const boost::system::error_code& error, std::size_t read) {
                             if (error != asio::error::operation_aborted || read > 0)
                               follower->peer_left();
                           }));
}

// What one read of the pool gives a follow stream: the events to write, and what comes next.
struct LiveStep {
  enum class Then {
    wait,        // for a wake-up or the heartbeat (unless something was released meanwhile)
    read_again,  // at once: the batch was full, or the session ended
    end,         // write `closing`, end the body
    stop,        // stop without ending the body: the client resumes from its last id
  };
  std::string events;  // encoded, possibly none
  std::uint64_t last_sequence_id = 0;
  std::uint64_t encoded_bytes_through = 0;
  Then then = Then::wait;
  std::string closing;  // Then::end: the final snapshot and `done`, or the feed-lost error
};

LiveStep plan_step(const bridge::FollowUpdate& update, const std::vector<core::SharedEvent>& events,
                   const StreamSettings& settings) {
  using Then = LiveStep::Then;
  LiveStep step;
  if (update.events_lost) {
    step.then = Then::stop;  // fell behind retention: resuming shows the gap
    return step;
  }
  if (!events.empty()) {
    for (const auto& retained : events)
      step.events += retained->encoded;
    step.last_sequence_id = events.back()->event.sequence_id;
    step.encoded_bytes_through = events.back()->encoded_bytes_through;
    // Another read of the pool (and its lock) per delivery is needed only when this batch was
    // full, the session ended, or something was released during the write (the caller checks).
    if (!update.feed_lost && (events.size() == kBatchEvents || update.finished)) {
      step.then = Then::read_again;
      return step;
    }
  } else if (update.finished) {
    step.then = Then::end;
    step.closing = final_frames(update.session, settings);
    return step;
  }
  if (update.feed_lost) {
    // Nothing more will arrive on it: say why, and end without `done` so the client resumes.
    step.then = Then::end;
    step.closing = feed_lost_frame();
  }
  return step;
}

// A follow stream: counted from its first step, registered with the pool by its opening read,
// then, once the opening is written, driven by callbacks on the connection's executor (see
// http::DetachedStream). So an idle stream holds no coroutine frame: only this object, its
// follower, the connection, the wake-up wait and the departure watch. One operation of the loop
// (a read of the store, a write or the wait) is pending at a time, and it holds the stream.
class LiveStream : public std::enable_shared_from_this<LiveStream> {
 public:
  LiveStream(const asio::any_io_executor& executor, bridge::SessionService& pool,
             StreamRequest request, const StreamSettings& settings, StreamCounts& counts,
             BlockingCalls& blocking)
      : pool_(pool),
        request_(std::move(request)),
        settings_(settings),
        blocking_(blocking),
        follow_slot_(counts.follow),
        open_slot_(counts.open),
        follower_(std::make_shared<StreamFollower>(executor, settings.max_buffered_bytes)) {}
  LiveStream(const LiveStream&) = delete;
  LiveStream& operator=(const LiveStream&) = delete;
  ~LiveStream() { unregister(); }

  const StreamRequest& request() const { return request_; }
  const std::shared_ptr<StreamFollower>& follower() const { return follower_; }
  // Follow streams open now, this one included, when it was opened.
  std::uint64_t follow_count() const { return follow_slot_.count(); }
  // The opening read registered the follower, and its replay ends at `encoded_bytes_total`.
  void registered(std::uint64_t encoded_bytes_total) {
    registered_ = true;
    follower_->sent_through(encoded_bytes_total);
  }

  // Takes over the connection once the opening is written; live events follow
  // `live_after_sequence_id`.
  void start(std::shared_ptr<http::DetachedStream> out, std::uint64_t live_after_sequence_id) {
    out_ = std::move(out);
    last_sent_ = live_after_sequence_id;
    follower_->attach(out_->socket());
    watch_for_departure(out_->socket(), follower_);
    if (settings_.stream_max_ms > 0)
      deadline_ = Clock::now() + std::chrono::milliseconds(settings_.stream_max_ms);
    read();
  }

 private:
  using Then = LiveStep::Then;

  // The top of the loop: one read of the pool after `last_sent_`.
  void read() {
    follower_->rearm();
    if (follower_->overflowed())
      return stop();  // cut off: it resumes from its last id
    try {
      bridge::FollowUpdate update =
          pool_.events_after(request_.session_id, last_sent_, kBatchEvents);
      if (!update.in_store)
        return write_step(plan_step(update, update.events, settings_));
      // Let go from memory: read back from the store, off this thread.
      asio::co_spawn(out_->executor(), read_stored(std::move(update)),
                     [self = shared_from_this()](const std::exception_ptr& error, LiveStep step) {
                       if (error)
                         return self->fail(error);
                       self->write_step(std::move(step));
                     });
    } catch (...) {
      fail(std::current_exception());
    }
  }

  asio::awaitable<LiveStep> read_stored(bridge::FollowUpdate update) {
    const bridge::Replay stored = co_await blocking_.run(
        [&] { return pool_.replay(request_.session_id, last_sent_, kBatchEvents); });
    if (stored.events.empty()) {
      LiveStep gone;
      gone.then = Then::stop;  // gone meanwhile (purged): resuming says how
      co_return gone;
    }
    co_return plan_step(update, stored.events, settings_);
  }

  void write_step(LiveStep step) {
    if (step.then == Then::stop)
      return stop();
    if (step.events.empty())
      return after_events(step.then, std::move(step.closing));
    std::string events = std::move(step.events);
    out_->write(std::move(events), [self = shared_from_this(), step = std::move(step)](
                                       const boost::system::error_code& error) mutable {
      if (error)
        return self->stop();
      self->last_sent_ = step.last_sequence_id;
      self->follower_->sent_through(step.encoded_bytes_through);
      if (step.then == Then::read_again ||
          (step.then == Then::wait && self->follower_->notified_since_rearm()))
        return self->read();
      self->after_events(step.then, std::move(step.closing));
    });
  }

  void after_events(Then then, std::string closing) {
    if (then == Then::end) {
      out_->write(std::move(closing),
                  [self = shared_from_this()](const boost::system::error_code& error) {
                    if (error)
                      return self->stop();
                    self->end_body();
                  });
      return;
    }
    const auto now = Clock::now();
    if (now >= deadline_)
      return end_body();  // a clean end without `done`: the client resumes from its last id
    // Woken (the timer cancelled) by notify(), or the heartbeat is due. The wait is allocated
    // exactly: an idle stream holds it for up to a heartbeat.
    const auto heartbeat = std::chrono::milliseconds(settings_.heartbeat_ms);
    auto& timer = follower_->wake_timer();
    timer.expires_at(deadline_ - now < heartbeat ? deadline_ : now + heartbeat);
    timer.async_wait(
        asio::bind_allocator(std::allocator<void>(),
                             [self = shared_from_this()](const boost::system::error_code& error) {
                               if (self->follower_->peer_gone())
                                 return self->stop();  // the client went away
                               if (error || Clock::now() >= self->deadline_)
                                 return self->read();
                               self->out_->write(http::serialize_sse_comment("keepalive"),
                                                 [self](const boost::system::error_code& error) {
                                                   if (error)
                                                     return self->stop();
                                                   self->read();
                                                 });
                             }));
  }

  void end_body() {
    out_->end([self = shared_from_this()](const boost::system::error_code&) { self->stop(); });
  }

  void fail(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& failure) {
      spdlog::debug("follow stream of {} ended: {}", request_.session_id, failure.what());
    } catch (...) {
      spdlog::debug("follow stream of {} ended", request_.session_id);
    }
    stop();
  }

  // The end, however it came: the follower leaves the pool, the connection is closed politely.
  void stop() {
    unregister();
    if (out_)
      std::exchange(out_, nullptr)->finish();
  }

  void unregister() {
    follower_->detach();
    if (registered_) {
      registered_ = false;
      pool_.unfollow(request_.session_id, follower_.get());
    }
  }

  bridge::SessionService& pool_;
  const StreamRequest request_;
  const StreamSettings& settings_;
  BlockingCalls& blocking_;
  const StreamSlot follow_slot_;
  const StreamSlot open_slot_;
  const std::shared_ptr<StreamFollower> follower_;
  bool registered_ = false;
  std::shared_ptr<http::DetachedStream> out_;
  std::uint64_t last_sent_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
};

}  // namespace

std::string encode_event_frame(const core::SessionEvent& event) {
  return http::serialize_sse(frame(std::to_string(event.sequence_id),
                                   "external_coding_agent.progress",
                                   json::serialize(to_json(event))));
}

namespace {

// The opening read, which may wait on the network: the replay and, for a follow stream, its
// registration in the same step, so nothing falls in between.
bridge::FollowStart read_opening(bridge::SessionService& pool, const StreamRequest& request,
                                 const std::shared_ptr<StreamFollower>& follower) {
  std::optional<std::uint64_t> cursor = request.cursor;
  if (cursor)
    cursor = std::min(*cursor, kLargestServiceCursor);
  bridge::FollowStart start;
  if (follower)
    start = pool.follow(request.session_id, cursor, request.limit, follower);
  else
    start.replay = pool.replay(request.session_id, cursor, request.limit);
  return start;
}

// What a stream writes before anything live: computed in a coroutine of its own, so that the
// replay is not kept in a longer-lived frame.
struct StreamOpening {
  std::string frames;  // retry, snapshot, gap, replay (and done)
  std::uint64_t live_after_sequence_id = 0;
};

// `live`: the follow stream to register, or null for a replay.
asio::awaitable<StreamOpening> open_stream(bridge::SessionService& pool,
                                           const StreamRequest& request,
                                           const StreamSettings& settings, BlockingCalls& blocking,
                                           LiveStream* live) {
  const std::shared_ptr<StreamFollower> follower = live ? live->follower() : nullptr;
  const bridge::FollowStart start =
      co_await blocking.run([&] { return read_opening(pool, request, follower); });
  if (live)
    live->registered(start.replay.encoded_bytes_total);
  StreamOpening opening;
  opening.frames = opening_frames(start.replay, request.cursor, settings);
  if (!live)
    opening.frames += http::serialize_sse(frame(std::nullopt, "done", "[DONE]"));
  // A cursor past the newest event still means "already seen": live events start after it.
  opening.live_after_sequence_id =
      std::max(start.live_after_sequence_id, request.cursor.value_or(0));
  co_return opening;
}

asio::awaitable<void> start_event_stream(http::Exchange& exchange, bool follow,
                                         const StreamSettings& settings) {
  beast_http::response<beast_http::empty_body> header{beast_http::status::ok, 11};
  header.set(beast_http::field::content_type, "text/event-stream");
  header.set(beast_http::field::cache_control, "no-cache");
  header.set("X-Accel-Buffering", "no");
  if (follow) {
    // A follow stream holds its connection until the end; it is not reused afterwards.
    exchange.close_after();
    // A reader that stops reading while no new events arrive never passes the backlog limit;
    // a write that stays blocked this long cuts it off instead.
    exchange.set_write_timeout(std::max(2 * std::chrono::milliseconds(settings.heartbeat_ms),
                                        std::chrono::milliseconds(kMinWriteTimeoutMs)));
  }
  co_await exchange.start_stream(std::move(header));
}

}  // namespace

asio::awaitable<void> write_event_stream(http::Exchange& exchange, bridge::SessionService& pool,
                                         StreamRequest request, const StreamSettings& settings,
                                         StreamCounts& counts, BlockingCalls& blocking) {
  if (!request.follow) {
    const StreamSlot open_slot(counts.open);
    if (exchange.is_head()) {
      // The header a GET would get, and nothing else: the session must exist (404 otherwise),
      // but nothing is replayed.
      co_await blocking.run([&] { return pool.get(request.session_id); });
      co_await start_event_stream(exchange, false, settings);
      co_return;
    }
    const StreamOpening opening = co_await open_stream(pool, request, settings, blocking, nullptr);
    co_await start_event_stream(exchange, false, settings);
    co_await exchange.write_stream(opening.frames);
    co_await exchange.end_stream();
    co_return;
  }
  const auto live = std::make_shared<LiveStream>(exchange.executor(), pool, std::move(request),
                                                 settings, counts, blocking);
  if (live->follow_count() > settings.max_follow_streams) {
    throw ApiError(503, "stream_limit_reached",
                   "the gateway already serves the maximum of " +
                       std::to_string(settings.max_follow_streams) + " follow streams");
  }
  if (exchange.is_head()) {
    // Nothing is followed either.
    co_await blocking.run([&] { return pool.get(live->request().session_id); });
    co_await start_event_stream(exchange, true, settings);
    co_return;
  }
  StreamOpening opening =
      co_await open_stream(pool, live->request(), settings, blocking, live.get());
  co_await start_event_stream(exchange, true, settings);
  co_await exchange.write_stream(std::move(opening.frames));
  live->start(exchange.detach(), opening.live_after_sequence_id);
}

}  // namespace tau::gateway
