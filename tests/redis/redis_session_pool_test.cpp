#include "redis/redis_session_pool.h"

#include "redis/redis_rate_limiter.h"
#include "redis/redis_token_registry.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "bridge/recording_follower.h"
#include "support/manual_clock.h"
#include "support/redis_server.h"

namespace tau::redis {
namespace {

using core::Error;
using core::ErrorCode;
using core::SessionStatus;

std::string encode(const core::SessionEvent& event) {
  return std::to_string(event.sequence_id) + ":" + event.message + "\n";
}

// Two gateways' pools over one Redis, with one clock; each test gets its own key prefix.
class RedisSessionPoolTest : public ::testing::Test {
 protected:
  // spdlog's registry is made on first use; the pools' threads log, so make it here first (the
  // library is not instrumented, so ThreadSanitizer cannot see its own guard).
  RedisSessionPoolTest() { spdlog::default_logger(); }

  // What one gateway holds: its own connections and script.
  std::shared_ptr<RedisScript> make_script(
      std::chrono::milliseconds command_timeout = RedisClient::Options{}.command_timeout) {
    RedisClient::Options options;
    options.connect_timeout = std::chrono::milliseconds(300);
    options.command_timeout = command_timeout;
    return std::make_shared<RedisScript>(std::make_shared<RedisClient>(
        std::get<RedisAddress>(parse_redis_url(redis_.url())), options));
  }
  std::unique_ptr<RedisSessionPool> make_pool(bridge::PoolLimits limits = {},
                                              core::EventEncoder encoder = encode,
                                              RedisSessionPool::IdGenerator ids = nullptr) {
    return std::make_unique<RedisSessionPool>(
        make_script(), RedisPoolSettings{.prefix = prefix_, .owner_lease_ms = 1000}, limits,
        clock_.as_clock(), std::move(encoder), std::move(ids));
  }

  // Waits until the pool's live feed is subscribed (it subscribes on its own thread).
  static void wait_for_feed(const RedisSessionPool& pool) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pool.feed_connected()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the feed never subscribed";
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  static ErrorCode error_of(const std::function<void()>& call) {
    try {
      call();
    } catch (const Error& error) {
      return error.code();
    }
    ADD_FAILURE() << "no Error";
    return ErrorCode::invalid_message;
  }

  test::RedisServer redis_;
  test::ManualClock clock_;
  std::string prefix_ = "tau:test:" + std::to_string(::getpid()) + ":";
};

using test::RecordingFollower;

TEST(RedisUrl, ParsesHostPortPasswordAndDatabase) {
  auto parsed = parse_redis_url("redis://:s3cret@127.0.0.1:6380/2");
  ASSERT_TRUE(std::holds_alternative<RedisAddress>(parsed));
  const auto& address = std::get<RedisAddress>(parsed);
  EXPECT_EQ(address.host, "127.0.0.1");
  EXPECT_EQ(address.port, 6380);
  EXPECT_EQ(address.password, "s3cret");
  EXPECT_EQ(address.database, 2);
  EXPECT_EQ(address.describe(), "redis://127.0.0.1:6380/2");  // never the password

  const auto defaults = std::get<RedisAddress>(parse_redis_url("redis://localhost"));
  EXPECT_EQ(defaults.port, 6379);
  EXPECT_EQ(defaults.database, 0);
  EXPECT_EQ(std::get<RedisAddress>(parse_redis_url("redis://[::1]:7000")).host, "::1");

  for (const char* bad : {"http://127.0.0.1:6379", "redis://", "redis://h:6379/x",
                          "redis://h:6379/-1", "redis://h:0", "redis://h:6379?db=1", "not a url"})
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_redis_url(bad))) << bad;
}

TEST_F(RedisSessionPoolTest, ANewPoolIsSubscribedToTheLiveFeedBeforeItServesAnything) {
  // A readiness probe or a stream right after start-up must not race the first SUBSCRIBE.
  for (int i = 0; i < 5; ++i) {
    const auto pool = make_pool();
    EXPECT_TRUE(pool->feed_connected());
    EXPECT_FALSE(pool->store_failed());
  }
}

TEST_F(RedisSessionPoolTest, AnyPoolSeesTheSameSessionsAndEvents) {
  auto a = make_pool();
  auto b = make_pool();
  const auto opened = a->open("  ws-1 ", false);
  EXPECT_TRUE(opened.created);
  EXPECT_EQ(opened.session.workspace_id, "ws-1");
  EXPECT_EQ(opened.session.status, SessionStatus::running);
  const auto reused = b->open("ws-1", false);
  EXPECT_FALSE(reused.created);
  EXPECT_EQ(reused.session.session_id, opened.session.session_id);

  const std::string id = opened.session.session_id;
  EXPECT_EQ(a->append_progress(id, " one ").event.sequence_id, 1u);
  EXPECT_EQ(b->append_followup(id, "two").event.sequence_id, 2u);
  EXPECT_EQ(a->append_followup(id, "three").session.queued_followups, 2u);
  EXPECT_EQ(b->get(id).queued_followups, 2u);

  const auto replay = b->replay(id, 1, 10);
  ASSERT_EQ(replay.events.size(), 2u);
  EXPECT_EQ(replay.events[0]->event.message, "two");
  EXPECT_EQ(replay.events[0]->event.event_type, "followup");
  EXPECT_EQ(replay.events[1]->encoded, "3:three\n");
  EXPECT_EQ(replay.first_retained_sequence_id, 1u);
  EXPECT_EQ(replay.last_sequence_id, 3u);

  const auto first = a->drain_followups(id, 1);
  EXPECT_EQ(first.followups, std::vector<std::string>{"two"});
  const auto rest = b->drain_followups(id, 10);
  EXPECT_EQ(rest.followups, std::vector<std::string>{"three"});
  EXPECT_EQ(rest.session.queued_followups, 0u);

  EXPECT_EQ(b->close(id).session.status, SessionStatus::closed);
  EXPECT_EQ(error_of([&] { a->append_progress(id, "late"); }), ErrorCode::session_not_running);
  EXPECT_EQ(error_of([&] { a->get("eca_nope"); }), ErrorCode::session_not_found);
  EXPECT_EQ(error_of([&] { a->open("  ", false); }), ErrorCode::invalid_workspace_id);
  // A closed workspace opens afresh.
  EXPECT_NE(b->open("ws-1", false).session.session_id, id);
}

TEST_F(RedisSessionPoolTest, RetentionKeepsTheNewestEventsAndIdsStayConsecutive) {
  auto a = make_pool({.max_events_per_session = 3});
  auto b = make_pool({.max_events_per_session = 3});
  const std::string id = a->open("ws", false).session.session_id;
  for (int i = 1; i <= 5; ++i)
    (i % 2 ? a : b)->append_progress(id, "m" + std::to_string(i));
  const auto replay = b->replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 3u);
  EXPECT_EQ(replay.events.front()->event.sequence_id, 3u);
  EXPECT_EQ(replay.events.back()->event.sequence_id, 5u);
  EXPECT_EQ(replay.first_retained_sequence_id, 3u);
}

TEST_F(RedisSessionPoolTest, RacingOpensOfOneWorkspaceOnTwoPoolsYieldOneSession) {
  auto a = make_pool();
  auto b = make_pool();
  std::mutex mutex;
  std::set<std::string> ids;
  int created = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      const auto opened = (i % 2 ? a : b)->open("shared", false);
      std::lock_guard lock(mutex);
      ids.insert(opened.session.session_id);
      created += opened.created ? 1 : 0;
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(created, 1);
}

TEST_F(RedisSessionPoolTest, TheActiveLimitHoldsAcrossPoolsUnderConcurrentOpens) {
  auto a = make_pool({.max_active_sessions = 3});
  auto b = make_pool({.max_active_sessions = 3});
  std::atomic<int> opened{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      try {
        (i % 2 ? a : b)->open("ws-" + std::to_string(i), false);
        ++opened;
      } catch (const Error& error) {
        EXPECT_EQ(error.code(), ErrorCode::session_limit_reached);
        ++refused;
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(opened, 3);
  EXPECT_EQ(refused, 17);
  EXPECT_EQ(a->runtime().active_sessions, 3u);
  EXPECT_EQ(b->counters().sessions_by_status[core::status_index(SessionStatus::running)], 3u);
}

TEST_F(RedisSessionPoolTest, ReapTimesOutIdleSessionsAtTheInjectedTime) {
  auto a = make_pool({.inactivity_timeout_ms = 1000});
  auto b = make_pool({.inactivity_timeout_ms = 1000});
  const std::string idle = a->open("idle", false).session.session_id;
  clock_.advance(600);
  const std::string busy = a->open("busy", false).session.session_id;
  clock_.advance(600);
  const auto result = b->reap_now();
  ASSERT_EQ(result.reaped.size(), 1u);
  EXPECT_EQ(result.reaped[0].session_id, idle);
  EXPECT_EQ(result.reaped[0].status, SessionStatus::timed_out);
  EXPECT_EQ(result.runtime.active_sessions, 1u);
  // Every other call reaps first too: the busy one is stale 1001 ms after its last activity.
  clock_.advance(401);
  EXPECT_EQ(a->get(busy).status, SessionStatus::timed_out);
}

TEST_F(RedisSessionPoolTest, AFollowerOnOnePoolReceivesWhatAnotherAppendsInOrder) {
  auto a = make_pool();
  auto b = make_pool();
  const std::string id = a->open("ws", false).session.session_id;
  a->append_progress(id, "before");
  auto follower = std::make_shared<RecordingFollower>();
  const auto start = b->follow(id, 0, 100, follower);
  ASSERT_EQ(start.replay.events.size(), 1u);
  EXPECT_EQ(start.live_after_sequence_id, 1u);

  for (int i = 2; i <= 30; ++i)
    a->append_progress(id, "e" + std::to_string(i));
  a->close(id);

  std::vector<std::uint64_t> received;
  std::uint64_t last = 1;
  bool finished = false;
  ASSERT_TRUE(follower->wait_until([&] {
    const auto update = b->events_after(id, last, 8);
    EXPECT_FALSE(update.feed_lost);
    EXPECT_FALSE(update.events_lost);
    for (const auto& event : update.events) {
      received.push_back(event->event.sequence_id);
      last = event->event.sequence_id;
    }
    finished = update.finished;
    return finished;
  }));
  ASSERT_EQ(received.size(), 29u);
  for (std::size_t i = 0; i < received.size(); ++i)
    EXPECT_EQ(received[i], i + 2);
  EXPECT_EQ(b->events_after(id, last, 8).session.status, SessionStatus::closed);
  b->unfollow(id, follower.get());
}

TEST_F(RedisSessionPoolTest, AReplayOfAFollowedSessionReusesTheEncodingsItsWindowHolds) {
  auto encodings = std::make_shared<std::atomic<int>>(0);
  auto pool = make_pool({}, [encodings](const core::SessionEvent& event) {
    ++*encodings;
    return encode(event);
  });
  const std::string id = pool->open("ws", false).session.session_id;
  pool->append_progress(id, "one");
  pool->append_progress(id, "two");
  // Not followed here: a replay encodes what it read.
  EXPECT_EQ(pool->replay(id, std::nullopt, 10).events.size(), 2u);
  EXPECT_EQ(encodings->load(), 2);
  // Following reads (and encodes) them once more; the window keeps those encodings.
  auto follower = std::make_shared<RecordingFollower>();
  pool->follow(id, std::nullopt, 10, follower);
  EXPECT_EQ(encodings->load(), 4);

  const bridge::Replay replay = pool->replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 2u);
  EXPECT_EQ(replay.events[1]->encoded, "2:two\n");
  EXPECT_EQ(replay.events[1]->encoded_bytes_through, std::string("1:one\n2:two\n").size());
  EXPECT_EQ(encodings->load(), 4) << "the replay encoded events its window held";

  // A new event is encoded once, by the window, when the feed brings it.
  pool->append_progress(id, "three");
  ASSERT_TRUE(follower->wait_until([&] { return !pool->events_after(id, 2, 10).events.empty(); }));
  EXPECT_EQ(encodings->load(), 5);
  EXPECT_EQ(pool->replay(id, 1, 10).events.size(), 2u);
  EXPECT_EQ(encodings->load(), 5);
  pool->unfollow(id, follower.get());
}

TEST_F(RedisSessionPoolTest, AnEventsDataIsAStreamFieldOnlyWhenItHasSomeAndEveryGatewayReadsIt) {
  auto a = make_pool();
  auto b = make_pool();
  const std::string id = a->open("ws", false).session.session_id;
  const std::string data = R"({"tool":"edit","path":"src/a.cpp"})";
  a->append_event(id, "agent.tool_call", "edited src/a.cpp", data);
  a->append_progress(id, "plain");

  // Stored as the field 'd' of a typed event only: an event without data is stored as every
  // event was before data existed (t, m, ts), and such entries read back without data.
  RedisClient client(std::get<RedisAddress>(parse_redis_url(redis_.url())), {});
  const Reply entries = client.command({"XRANGE", prefix_ + "e:" + id, "-", "+"});
  ASSERT_EQ(entries.elements.size(), 2u);
  const auto fields_of = [](const Reply& entry) {
    std::vector<std::string> fields;
    const auto& pairs = entry.elements.at(1).elements;
    for (std::size_t i = 0; i < pairs.size(); i += 2)
      fields.push_back(pairs[i].text + "=" + pairs[i + 1].text);
    return fields;
  };
  const std::string at = std::to_string(clock_.now());
  EXPECT_EQ(fields_of(entries.elements[0]),
            (std::vector<std::string>{"t=agent.tool_call", "m=edited src/a.cpp", "ts=" + at,
                                      "d=" + data}));
  EXPECT_EQ(fields_of(entries.elements[1]),
            (std::vector<std::string>{"t=progress", "m=plain", "ts=" + at}));

  // Another gateway's replay has it, and encodes it with its event.
  const bridge::Replay replay = b->replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 2u);
  EXPECT_EQ(replay.events[0]->event.event_type, "agent.tool_call");
  EXPECT_EQ(replay.events[0]->event.data, data);
  EXPECT_EQ(replay.events[1]->event.data, "");
}

TEST_F(RedisSessionPoolTest, SessionIdsThatNeedEscapingReachFollowersAndOwners) {
  // The feed carries ids as JSON strings: this one is escaped there.
  const std::string odd_id = "eca_\"quoted\\id\u00e9";
  auto pool = make_pool({}, encode, [&] { return odd_id; });
  std::mutex mutex;
  std::vector<std::string> routed;
  pool->set_followup_listener([&](const std::string& session_id, const std::string& message) {
    std::lock_guard lock(mutex);
    routed.push_back(session_id + "|" + message);
  });
  ASSERT_EQ(pool->open("ws", true).session.session_id, odd_id);
  auto follower = std::make_shared<RecordingFollower>();
  pool->follow(odd_id, std::nullopt, 10, follower);

  pool->append_followup(odd_id, "hello");

  EXPECT_TRUE(follower->wait_until([&] {
    std::lock_guard lock(mutex);
    return pool->events_after(odd_id, 0, 10).events.size() == 1 && routed.size() == 1;
  }));
  EXPECT_EQ(routed, std::vector<std::string>{odd_id + "|hello"});
  pool->unfollow(odd_id, follower.get());
  pool->set_followup_listener(nullptr);
}

TEST_F(RedisSessionPoolTest, AMalformedOrSkippingFeedMessageLosesItsSessionsWatch) {
  auto pool = make_pool();
  const std::string skipped = pool->open("a", false).session.session_id;
  const std::string garbled = pool->open("b", false).session.session_id;
  const std::string fine = pool->open("c", false).session.session_id;
  std::vector<std::shared_ptr<RecordingFollower>> followers;
  for (const std::string& id : {skipped, garbled, fine}) {
    followers.push_back(std::make_shared<RecordingFollower>());
    pool->follow(id, std::nullopt, 10, followers.back());
  }

  // An event whose id skips some: a change went missing. And a message that is not one.
  redis_.cli({"PUBLISH", prefix_ + "feed",
              "[\"" + skipped + "\",\"a\",\"running\",1,2,0,[7,\"progress\",\"m\",3]]"});
  redis_.cli({"PUBLISH", prefix_ + "feed", "[\"" + garbled + "\",\"b\",\"sleeping\"]"});
  pool->append_progress(fine, "still fine");

  EXPECT_TRUE(
      followers[0]->wait_until([&] { return pool->events_after(skipped, 0, 10).feed_lost; }));
  EXPECT_TRUE(
      followers[1]->wait_until([&] { return pool->events_after(garbled, 0, 10).feed_lost; }));
  EXPECT_TRUE(
      followers[2]->wait_until([&] { return pool->events_after(fine, 0, 10).events.size() == 1; }));
  EXPECT_FALSE(pool->events_after(fine, 0, 10).feed_lost);
  EXPECT_TRUE(pool->feed_connected());
  for (std::size_t i = 0; i < followers.size(); ++i)
    pool->unfollow(std::vector<std::string>{skipped, garbled, fine}[i], followers[i].get());
}

TEST_F(RedisSessionPoolTest, RedisDownFailsFastEndsFollowersAndRecovers) {
  auto a = make_pool();
  const std::string id = a->open("ws", false).session.session_id;
  a->append_progress(id, "kept");
  auto follower = std::make_shared<RecordingFollower>();
  a->follow(id, std::nullopt, 100, follower);

  redis_.stop();
  EXPECT_EQ(error_of([&] { a->append_progress(id, "lost"); }), ErrorCode::store_unavailable);
  EXPECT_EQ(error_of([&] { a->get(id); }), ErrorCode::store_unavailable);
  EXPECT_TRUE(follower->wait_until([&] { return a->events_after(id, 1, 8).feed_lost; }));
  EXPECT_TRUE(a->store_failed());
  a->unfollow(id, follower.get());

  redis_.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (true) {
    try {
      a->append_progress(id, "after");
      break;
    } catch (const Error& error) {
      ASSERT_EQ(error.code(), ErrorCode::store_unavailable);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "never recovered";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  wait_for_feed(*a);
  EXPECT_FALSE(a->store_failed());
  const auto replay = a->replay(id, std::nullopt, 10);
  ASSERT_EQ(replay.events.size(), 2u);
  EXPECT_EQ(replay.events[0]->event.message, "kept");
  EXPECT_EQ(replay.events[1]->event.message, "after");
  EXPECT_EQ(replay.events[1]->event.sequence_id, 2u);
}

TEST_F(RedisSessionPoolTest, TheRateLimitIsOneBudgetAcrossGateways) {
  RedisRateLimiter a(make_script(), prefix_, 60, 3, clock_.as_clock());
  RedisRateLimiter b(make_script(), prefix_, 60, 3, clock_.as_clock());
  clock_.set(60'000 * 1000 + 15'000);  // 15 s into a window
  EXPECT_TRUE(a.check("token").allowed);
  EXPECT_TRUE(b.check("token").allowed);
  EXPECT_TRUE(a.check("token").allowed);
  const auto refused = b.check("token");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 45);
  EXPECT_EQ(b.rejected_requests(), 1u);
  EXPECT_TRUE(a.check("session:other").allowed);  // another principal's budget
  clock_.advance(45'000);                         // the next window
  EXPECT_TRUE(b.check("token").allowed);
  // Keys name a digest of the principal, never the principal (it may be a credential).
  EXPECT_EQ(redis_.cli({"--scan", "--pattern", "*token*"}), "");
}

TEST_F(RedisSessionPoolTest, RateLimitLeasesNeverAdmitMoreThanTheLimitAcrossGateways) {
  RedisRateLimiter a(make_script(), prefix_, 60, 160, clock_.as_clock());
  RedisRateLimiter b(make_script(), prefix_, 60, 160, clock_.as_clock());
  ASSERT_EQ(a.lease_size(), 10u);
  clock_.set(60'000 * 1000 + 15'000);
  // Before a lease is taken only check() can decide; after, most requests are decided here.
  EXPECT_FALSE(a.try_check("token").has_value());
  EXPECT_TRUE(a.check("token").allowed);  // takes a lease of 10, uses 1
  const auto counted = [&] {
    return std::stoull(redis_.cli({"GET", prefix_ + "rate:" + auth::token_digest("token") + ":" +
                                              std::to_string(60'000 * 1000)}));
  };
  EXPECT_EQ(counted(), 10u);
  for (int i = 0; i < 9; ++i) {
    const auto local = a.try_check("token");
    ASSERT_TRUE(local.has_value());
    EXPECT_TRUE(local->allowed);
  }
  EXPECT_FALSE(a.try_check("token").has_value());  // used up: the next one asks Redis

  // The slack: b takes the rest of the budget while a holds a lease it has not used.
  EXPECT_TRUE(a.check("token").allowed);  // a's second lease, 9 left unused
  int admitted_by_b = 0;
  while (b.check("token").allowed)
    ++admitted_by_b;
  EXPECT_EQ(admitted_by_b, 160 - 20);
  EXPECT_EQ(counted(), 160u);
  // a still admits what it holds, then is refused: never more than the limit in all.
  int admitted_by_a = 0;
  while (a.check("token").allowed)
    ++admitted_by_a;
  EXPECT_EQ(admitted_by_a, 9);
  EXPECT_EQ(counted(), 160u);
  // A refusal is known here until the window ends.
  const auto refused = a.try_check("token");
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->allowed);
  EXPECT_EQ(refused->retry_after_seconds, 45);
  clock_.advance(45'000);  // the next window
  EXPECT_TRUE(a.check("token").allowed);
  EXPECT_TRUE(b.check("token").allowed);
}

TEST_F(RedisSessionPoolTest, ConcurrentRateChecksOnManyGatewaysAdmitExactlyTheLimit) {
  constexpr int kGateways = 3;
  constexpr int kThreadsPerGateway = 4;
  constexpr std::uint64_t kLimit = 500;
  std::vector<std::unique_ptr<RedisRateLimiter>> gateways;
  for (int i = 0; i < kGateways; ++i)
    gateways.push_back(
        std::make_unique<RedisRateLimiter>(make_script(), prefix_, 60, kLimit, clock_.as_clock()));
  std::atomic<std::uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kGateways * kThreadsPerGateway; ++i) {
    threads.emplace_back([&, gateway = gateways[i % kGateways].get()] {
      for (int request = 0; request < 100; ++request) {
        if (gateway->check("token").allowed)
          ++admitted;
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  // 1,200 requests: every gateway asks until Redis refuses it, so every lease is used up.
  EXPECT_EQ(admitted.load(), kLimit);
}

TEST_F(RedisSessionPoolTest, PipelinedRepliesReachTheCallerWhoseCommandTheyAnswer) {
  RedisClient client(std::get<RedisAddress>(parse_redis_url(redis_.url())), {});
  constexpr int kThreads = 16;
  constexpr int kCommands = 300;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string counter = prefix_ + "counter:" + std::to_string(t);
      for (int i = 1; i <= kCommands; ++i) {
        const std::string tag = std::to_string(t) + "/" + std::to_string(i);
        if (client.command({"ECHO", tag}).text != tag)
          ++mismatches;
        if (client.command({"INCR", counter}).integer != i)
          ++mismatches;
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  // An error reply goes to its own caller too, and leaves the connection usable.
  EXPECT_TRUE(client.command({"INCR", prefix_ + "counter:0", "extra"}).is_error());
  EXPECT_EQ(client.command({"ECHO", "after"}).text, "after");
}

TEST_F(RedisSessionPoolTest, ALostConnectionFailsEveryAppendInFlightAndLosesNothingAcknowledged) {
  // A command timeout far off: the appends wait for the kill, however slow this machine is.
  auto pool = std::make_unique<RedisSessionPool>(make_script(std::chrono::minutes(2)),
                                                 RedisPoolSettings{.prefix = prefix_},
                                                 bridge::PoolLimits{}, clock_.as_clock(), encode);
  const std::string id = pool->open("ws", false).session.session_id;
  pool->append_progress(id, "acknowledged");
  // Redis holds every command it receives from now on, so the appends below stay in flight.
  redis_.cli({"CLIENT", "PAUSE", "60000", "ALL"});
  constexpr int kAppends = 8;
  std::vector<ErrorCode> errors(kAppends, ErrorCode::invalid_message);
  std::vector<std::thread> threads;
  for (int i = 0; i < kAppends; ++i) {
    threads.emplace_back([&, i] {
      errors[i] = error_of([&] { pool->append_progress(id, "in flight " + std::to_string(i)); });
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (pool->redis_in_flight() < kAppends) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the appends never got in flight";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  redis_.kill();
  for (auto& thread : threads)
    thread.join();
  for (const ErrorCode error : errors)
    EXPECT_EQ(error, ErrorCode::store_unavailable);

  redis_.start();  // from its append-only file: what it acknowledged is there
  const auto recovered = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (true) {
    try {
      const auto replay = pool->replay(id, std::nullopt, 10);
      ASSERT_EQ(replay.events.size(), 1u);
      EXPECT_EQ(replay.events[0]->event.message, "acknowledged");
      break;
    } catch (const Error& error) {
      ASSERT_EQ(error.code(), ErrorCode::store_unavailable);
      ASSERT_LT(std::chrono::steady_clock::now(), recovered) << "never recovered";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

TEST_F(RedisSessionPoolTest, ATokenIssuedByOneGatewayWorksOnAnotherUntilItExpires) {
  const auth::AuthConfig config{auth::AuthMode::password_session, "", "hunter2", 60};
  auth::Authenticator a(config, clock_.as_clock(),
                        std::make_shared<RedisTokenRegistry>(make_script(), prefix_));
  auth::Authenticator b(config, clock_.as_clock(),
                        std::make_shared<RedisTokenRegistry>(make_script(), prefix_));
  const auto issued = a.issue_session("hunter2");
  ASSERT_TRUE(std::holds_alternative<auth::IssuedToken>(issued));
  const std::string token = std::get<auth::IssuedToken>(issued).access_token;
  EXPECT_TRUE(std::holds_alternative<auth::Principal>(b.authorize("Bearer " + token)));
  EXPECT_FALSE(std::holds_alternative<auth::Principal>(b.authorize("Bearer " + token + "x")));
  EXPECT_EQ(b.stats().active_sessions, 1u);
  EXPECT_EQ(b.stats().total_sessions_issued, 1u);
  // Redis holds the digest, never the token.
  EXPECT_EQ(redis_.cli({"--scan", "--pattern", "*" + token + "*"}), "");
  clock_.advance(60'000);
  EXPECT_FALSE(std::holds_alternative<auth::Principal>(b.authorize("Bearer " + token)));
  EXPECT_EQ(a.stats().active_sessions, 0u);
}

}  // namespace
}  // namespace tau::redis
