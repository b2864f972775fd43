#include "gateway/event_stream.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <limits>
#include <memory>

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
// it only records and posts a wake-up to the stream's strand, where everything else happens.
class StreamFollower : public bridge::SessionFollower,
                       public std::enable_shared_from_this<StreamFollower> {
 public:
  StreamFollower(asio::ip::tcp::socket& socket, std::uint64_t max_backlog_bytes)
      : socket_(&socket),
        wake_timer_(socket.get_executor()),
        max_backlog_bytes_(max_backlog_bytes) {}

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

  // Strand only. Called before reading the pool, so a notify() after it posts a new wake-up.
  void rearm() { wake_pending_ = false; }
  // Whether the pool released anything since rearm(): if not, reading it again finds nothing.
  bool notified_since_rearm() const { return wake_pending_; }
  void sent_through(std::uint64_t encoded_bytes_through) { bytes_sent_ = encoded_bytes_through; }
  bool overflowed() const { return overflowed_; }
  asio::steady_timer& wake_timer() { return wake_timer_; }
  // Strand only: the client closed its side (or sent something an event stream never expects).
  void peer_left() {
    peer_gone_ = true;
    wake_timer_.cancel();
  }
  bool peer_gone() const { return peer_gone_; }
  // Where the departure watch reads to: a byte that lives as long as the follower.
  asio::mutable_buffer departure_buffer() { return asio::buffer(&departure_byte_, 1); }
  // Strand only: the stream is over, the socket may go away. Stops the departure watch.
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

  asio::ip::tcp::socket* socket_;
  asio::steady_timer wake_timer_;
  const std::uint64_t max_backlog_bytes_;
  // Unknown (and the backlog unchecked) until the stream knows where its replay ended.
  std::atomic<std::uint64_t> bytes_sent_{std::numeric_limits<std::uint64_t>::max()};
  std::atomic<bool> overflowed_{false};
  std::atomic<bool> wake_pending_{false};
  bool peer_gone_ = false;  // strand only
  char departure_byte_ = 0;
};

// Runs beside a follow stream for its whole life, so a departing client frees its stream at once
// without re-arming a read on every wake-up. A plain completion handler rather than a spawned
// coroutine, which would cost an idle stream three frames, and allocated exactly (not in one of
// Asio's recycled blocks, which may be much larger). Touches only the follower once the read
// completes: by then the stream may be over and its socket gone.
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

// Removes the follower from the pool however the stream ends.
class FollowRegistration {
 public:
  FollowRegistration(bridge::SessionService& pool, const std::string& session_id,
                     std::shared_ptr<StreamFollower> follower)
      : pool_(pool), session_id_(session_id), follower_(std::move(follower)) {}
  FollowRegistration(const FollowRegistration&) = delete;
  FollowRegistration& operator=(const FollowRegistration&) = delete;
  ~FollowRegistration() {
    follower_->detach();
    pool_.unfollow(session_id_, follower_.get());
  }

 private:
  bridge::SessionService& pool_;
  const std::string& session_id_;
  std::shared_ptr<StreamFollower> follower_;
};

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

// One read of the pool after `last_sent`. A coroutine of its own, so that the update and the
// replay it holds are not kept in the frame of an idle stream.
asio::awaitable<LiveStep> read_live_step(bridge::SessionService& pool, const StreamRequest& request,
                                         const StreamSettings& settings, std::uint64_t last_sent,
                                         BlockingCalls& blocking) {
  bridge::FollowUpdate update = pool.events_after(request.session_id, last_sent, kBatchEvents);
  if (!update.in_store)
    co_return plan_step(update, update.events, settings);
  // Let go from memory: read back from the store, off this thread.
  const bridge::Replay stored = co_await blocking.run(
      [&] { return pool.replay(request.session_id, last_sent, kBatchEvents); });
  if (stored.events.empty()) {
    LiveStep gone;
    gone.then = LiveStep::Then::stop;  // gone meanwhile (purged): resuming says how
    co_return gone;
  }
  co_return plan_step(update, stored.events, settings);
}

asio::awaitable<void> follow_live(http::Exchange& exchange, bridge::SessionService& pool,
                                  const StreamRequest& request, const StreamSettings& settings,
                                  const std::shared_ptr<StreamFollower>& follower_ptr,
                                  std::uint64_t last_sent, BlockingCalls& blocking) {
  using Then = LiveStep::Then;
  StreamFollower& follower = *follower_ptr;
  // The request was read and answered: an idle stream keeps none of it.
  exchange.release_request();
  watch_for_departure(exchange.socket(), follower_ptr);
  const auto deadline = settings.stream_max_ms > 0
                            ? Clock::now() + std::chrono::milliseconds(settings.stream_max_ms)
                            : Clock::time_point::max();
  const auto heartbeat = std::chrono::milliseconds(settings.heartbeat_ms);
  while (true) {
    follower.rearm();
    if (follower.overflowed())
      co_return;  // cut off: it resumes from its last id
    LiveStep step = co_await read_live_step(pool, request, settings, last_sent, blocking);
    if (step.then == Then::stop)
      co_return;
    if (!step.events.empty()) {
      co_await exchange.write_stream(std::move(step.events));
      last_sent = step.last_sequence_id;
      follower.sent_through(step.encoded_bytes_through);
      if (step.then == Then::read_again ||
          (step.then == Then::wait && follower.notified_since_rearm()))
        continue;
    }
    if (step.then == Then::end) {
      co_await exchange.write_stream(std::move(step.closing));
      co_await exchange.end_stream();
      co_return;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      // A clean end without `done`: the client reconnects and resumes from its last id.
      co_await exchange.end_stream();
      co_return;
    }
    // Woken (the timer cancelled) by notify(), or the heartbeat is due. The wait is allocated
    // exactly: an idle stream holds it for up to a heartbeat.
    auto& timer = follower.wake_timer();
    timer.expires_at(deadline - now < heartbeat ? deadline : now + heartbeat);
    const auto [cancelled] = co_await timer.async_wait(
        asio::bind_allocator(std::allocator<void>(), asio::as_tuple(asio::use_awaitable)));
    if (follower.peer_gone())
      co_return;  // the client went away
    if (!cancelled && Clock::now() < deadline)
      co_await exchange.write_stream(http::serialize_sse_comment("keepalive"));
  }
}

}  // namespace

std::string encode_event_frame(const core::SessionEvent& event) {
  return http::serialize_sse(frame(std::to_string(event.sequence_id),
                                   "external_coding_agent.progress",
                                   json::serialize(to_json(event))));
}

namespace {

// Everything a stream needs before its first write, computed outside the coroutine so that the
// frame a follow stream keeps for hours does not hold the replay or the response header.
struct StreamOpening {
  std::shared_ptr<StreamFollower> follower;  // follow streams only
  std::unique_ptr<FollowRegistration> registration;
  std::string frames;  // retry, snapshot, gap, replay (and done)
  std::uint64_t live_after_sequence_id = 0;
};

// The stream's opening read, which may wait on the network: the replay and, when `follower` is
// given, its registration in the same step, so nothing falls in between.
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

asio::awaitable<StreamOpening> open_stream(http::Exchange& exchange, bridge::SessionService& pool,
                                           const StreamRequest& request,
                                           const StreamSettings& settings,
                                           BlockingCalls& blocking) {
  StreamOpening opening;
  if (request.follow) {
    opening.follower =
        std::make_shared<StreamFollower>(exchange.socket(), settings.max_buffered_bytes);
  }
  const bridge::FollowStart start =
      co_await blocking.run([&] { return read_opening(pool, request, opening.follower); });
  if (request.follow) {
    opening.registration =
        std::make_unique<FollowRegistration>(pool, request.session_id, opening.follower);
    opening.follower->sent_through(start.replay.encoded_bytes_total);
  }
  opening.frames = opening_frames(start.replay, request.cursor, settings);
  if (!request.follow)
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
  std::optional<StreamSlot> follow_slot;
  if (request.follow) {
    follow_slot.emplace(counts.follow);
    if (follow_slot->count() > settings.max_follow_streams) {
      throw ApiError(503, "stream_limit_reached",
                     "the gateway already serves the maximum of " +
                         std::to_string(settings.max_follow_streams) + " follow streams");
    }
  }
  const StreamSlot open_slot(counts.open);
  if (exchange.is_head()) {
    // The header a GET would get, and nothing else: the session must exist (404 otherwise),
    // but nothing is replayed or followed.
    co_await blocking.run([&] { return pool.get(request.session_id); });
    co_await start_event_stream(exchange, request.follow, settings);
    co_return;
  }
  StreamOpening opening = co_await open_stream(exchange, pool, request, settings, blocking);
  co_await start_event_stream(exchange, request.follow, settings);
  co_await exchange.write_stream(std::move(opening.frames));
  if (request.follow) {
    co_await follow_live(exchange, pool, request, settings, opening.follower,
                         opening.live_after_sequence_id, blocking);
  } else {
    co_await exchange.end_stream();
  }
}

}  // namespace tau::gateway
