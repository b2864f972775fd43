// Scale-out on Redis (issue 9) against the real binary and Debian's redis-server: two or three
// gateways sharing one session pool answer alike, racing opens yield one session, the session
// limit holds across gateways, a follow stream on one gateway sees what is posted on another, and
// an outage of Redis is answered with 503s and recovered from without losing acknowledged events.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stop_token>
#include <thread>

#include "support/gateway_process.h"
#include "support/http_client.h"
#include "support/redis_server.h"

namespace tau::test {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// A key prefix no other test shares, so nothing depends on a clean database.
std::string random_prefix() {
  std::random_device device;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%08x%08x", device(), device());
  return std::string("tau:test:") + hex + ":";
}

// The auth flags the gateway helper passes by default, a rate limit the tests never reach (it is
// counted in Redis across the gateways), and the shared store.
std::vector<std::string> redis_args(const RedisServer& redis, const std::string& prefix,
                                    const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--auth-mode",    "localhost-dev", "--rate-limit-max-requests",
                                   "100000000",      "--store",       redis.url(),
                                   "--redis-prefix", prefix};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// `count` gateways on one Redis and one prefix.
std::vector<std::unique_ptr<GatewayProcess>> start_gateways(
    const RedisServer& redis, int count, const std::vector<std::string>& extra = {}) {
  const std::string prefix = random_prefix();
  std::vector<std::unique_ptr<GatewayProcess>> gateways;
  for (int i = 0; i < count; ++i)
    gateways.push_back(std::make_unique<GatewayProcess>(redis_args(redis, prefix, extra)));
  return gateways;
}

HttpResponse post_progress(const HttpClient& client, const std::string& id,
                           const std::string& message) {
  return client.post(session_path(id, "/progress"), json_body({{"message", message}}));
}

json::value session_of(const HttpResponse& response) {
  EXPECT_EQ(response.status, 200u) << response.body;
  return response.json().at("session");
}

std::int64_t sequence_id_of(const SseMessage& message) {
  EXPECT_EQ(message.event, "external_coding_agent.progress") << message.data;
  const auto id = json::parse(message.data).at("sequence_id").as_int64();
  EXPECT_EQ(message.id, std::to_string(id));
  return id;
}

// The `message` of an event frame.
std::string message_of(const SseMessage& event) {
  return std::string(json::parse(event.data).at("message").as_string());
}

// Runs `request(i)` for i in [0, count) on `count` threads released together, and returns the
// responses in order of i.
template <typename Request>
std::vector<HttpResponse> concurrently(int count, Request request) {
  std::vector<HttpResponse> responses(static_cast<std::size_t>(count));
  std::latch start(count);
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        responses[static_cast<std::size_t>(i)] = request(i);
      } catch (const std::exception& error) {
        ADD_FAILURE() << "request " << i << " failed: " << error.what();
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  return responses;
}

// Polls `done` until it holds or the deadline passes; returns whether it held.
template <typename Condition>
bool eventually(Condition done, std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (done())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// The fixture itself: a real redis-server that answers, stops, and keeps what it acknowledged
// across a restart on the same port.
TEST(RedisServerFixture, StartsStopsAndRestartsKeepingItsData) {
  RedisServer redis;
  ASSERT_TRUE(redis.running());
  EXPECT_NE(redis.port(), 0);
  EXPECT_EQ(redis.url(), "redis://127.0.0.1:" + std::to_string(redis.port()));
  EXPECT_TRUE(redis.ping());
  EXPECT_EQ(redis.cli({"PING"}), "PONG");
  EXPECT_EQ(redis.cli({"SET", "tau:fixture", "kept"}), "OK");

  const std::uint16_t port = redis.port();
  EXPECT_EQ(redis.stop(), 0);
  EXPECT_FALSE(redis.running());
  EXPECT_FALSE(redis.ping());
  redis.start();
  EXPECT_EQ(redis.port(), port);
  EXPECT_EQ(redis.cli({"GET", "tau:fixture"}), "kept");

  // Acknowledged writes survive a crash too (appendfsync always).
  EXPECT_EQ(redis.cli({"SET", "tau:fixture", "after-crash"}), "OK");
  redis.kill();
  EXPECT_FALSE(redis.ping());
  redis.start();
  EXPECT_EQ(redis.cli({"GET", "tau:fixture"}), "after-crash");
}

TEST(RedisScaleOut, OpenOnOneGatewayIsReusedOnAnotherAndEveryGatewayAnswersAlike) {
  RedisServer redis;
  auto gateways = start_gateways(redis, 2);
  const HttpClient a(gateways[0]->port());
  const HttpClient b(gateways[1]->port());

  const std::string id = open_session(a, "shared");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(open_session(b, "shared"), id);

  ASSERT_EQ(post_progress(a, id, "one").status, 200u);
  ASSERT_EQ(post_progress(b, id, "two").status, 200u);
  for (const char* message : {"f1", "f2"}) {
    ASSERT_EQ(b.post(session_path(id, "/followups"), json_body({{"message", message}})).status,
              200u);
  }

  // Detail, list, replay and status: the same answers from either gateway.
  const auto detail_a = session_of(a.get(session_path(id)));
  EXPECT_EQ(detail_a, session_of(b.get(session_path(id))));
  EXPECT_EQ(detail_a.at("session_id").as_string(), id);
  EXPECT_EQ(detail_a.at("status"), "running");
  EXPECT_EQ(detail_a.at("queued_followups"), 2);
  const auto list_a = a.get(kSessions);
  ASSERT_EQ(list_a.status, 200u) << list_a.body;
  EXPECT_EQ(list_a.json(), b.get(kSessions).json());
  ASSERT_EQ(list_a.json().at("sessions").as_array().size(), 1u) << list_a.body;
  EXPECT_EQ(list_a.json().at("sessions").at(0), detail_a);
  const auto replay_a = replayed_events(a, id);
  const auto replay_b = replayed_events(b, id);
  // Two progress events and two follow-ups.
  ASSERT_EQ(replay_a.size(), 4u);
  ASSERT_EQ(replay_b.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sequence_id_of(replay_a[i]), static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(replay_a[i].id, replay_b[i].id);
    EXPECT_EQ(replay_a[i].data, replay_b[i].data);
  }
  EXPECT_EQ(status_runtime(a).at("active_sessions"), 1);
  EXPECT_EQ(status_runtime(b).at("active_sessions"), 1);

  // One follow-up queue: drained in order, part on each gateway.
  const auto drained_b =
      b.post(session_path(id, "/followups/drain"), json_body({{"limit", 1}})).json();
  EXPECT_EQ(drained_b.at("followups"), json::array({"f1"}));
  const auto drained_a = a.post(session_path(id, "/followups/drain"), "").json();
  EXPECT_EQ(drained_a.at("followups"), json::array({"f2"}));
  EXPECT_EQ(session_of(b.get(session_path(id))).at("queued_followups"), 0);

  // Closed on one, closed everywhere; the workspace then opens afresh on the other.
  ASSERT_EQ(b.post(session_path(id, "/close"), "").status, 200u);
  EXPECT_EQ(session_of(a.get(session_path(id))).at("status"), "closed");
  const std::string reopened = open_session(a, "shared");
  EXPECT_FALSE(reopened.empty());
  EXPECT_NE(reopened, id);
  EXPECT_EQ(open_session(b, "shared"), reopened);
}

TEST(RedisScaleOut, RacingOpensOfOneWorkspaceOnThreeGatewaysYieldOneSession) {
  RedisServer redis;
  auto gateways = start_gateways(redis, 3);
  constexpr int kOpens = 30;
  const auto responses = concurrently(kOpens, [&](int i) {
    return HttpClient(gateways[static_cast<std::size_t>(i % 3)]->port())
        .post(kSessions, json_body({{"workspace_id", "contended"}}));
  });
  std::set<std::string> ids;
  for (const auto& response : responses) {
    ASSERT_EQ(response.status, 200u) << response.body;
    ids.insert(std::string(response.json().at("session").at("session_id").as_string()));
  }
  EXPECT_EQ(ids.size(), 1u);
  for (const auto& gateway : gateways) {
    const HttpClient client(gateway->port());
    const auto list = client.get(kSessions + "?workspace_id=contended");
    ASSERT_EQ(list.status, 200u) << list.body;
    EXPECT_EQ(list.json().at("sessions").as_array().size(), 1u) << list.body;
    EXPECT_EQ(status_runtime(client).at("active_sessions"), 1);
  }
}

TEST(RedisScaleOut, TheSessionLimitHoldsAcrossGatewaysUnderConcurrentOpens) {
  RedisServer redis;
  auto gateways = start_gateways(redis, 3, {"--max-active-sessions", "5"});
  constexpr int kOpens = 100;
  const auto responses = concurrently(kOpens, [&](int i) {
    return HttpClient(gateways[static_cast<std::size_t>(i % 3)]->port())
        .post(kSessions, json_body({{"workspace_id", "w" + std::to_string(i)}}));
  });
  int opened = 0;
  int refused = 0;
  std::vector<std::string> ids;
  for (const auto& response : responses) {
    if (response.status == 200u) {
      ++opened;
      ids.emplace_back(response.json().at("session").at("session_id").as_string());
    } else {
      ASSERT_EQ(response.status, 409u) << response.body;
      EXPECT_EQ(response.error_code(), "external_coding_agent_session_limit_reached");
      ++refused;
    }
  }
  EXPECT_EQ(opened, 5);
  EXPECT_EQ(refused, kOpens - 5);
  for (const auto& gateway : gateways) {
    const HttpClient client(gateway->port());
    const auto running = client.get(kSessions + "?status=running");
    ASSERT_EQ(running.status, 200u) << running.body;
    EXPECT_EQ(running.json().at("sessions").as_array().size(), 5u) << running.body;
    EXPECT_EQ(status_runtime(client).at("active_sessions"), 5);
  }

  // Closing one on one gateway frees exactly one place, taken on another.
  ASSERT_FALSE(ids.empty());
  const HttpClient a(gateways[0]->port());
  const HttpClient c(gateways[2]->port());
  ASSERT_EQ(a.post(session_path(ids.front(), "/close"), "").status, 200u);
  EXPECT_FALSE(open_session(c, "after-close").empty());
  const auto over = a.post(kSessions, json_body({{"workspace_id", "one-too-many"}}));
  EXPECT_EQ(over.status, 409u) << over.body;
  EXPECT_EQ(over.error_code(), "external_coding_agent_session_limit_reached");
}

TEST(RedisScaleOut, FollowStreamsOnOtherGatewaysSeeEventsPostedOnOneInOrder) {
  RedisServer redis;
  auto gateways = start_gateways(redis, 3);
  const HttpClient a(gateways[0]->port());
  const std::string id = open_session(a, "followed");
  ASSERT_FALSE(id.empty());

  SseStream on_b(gateways[1]->port(), session_path(id, "/stream?follow=true"));
  SseStream on_c(gateways[2]->port(), session_path(id, "/stream?follow=true"));
  for (SseStream* stream : {&on_b, &on_c}) {
    ASSERT_EQ(stream->head().status, 200u);
    EXPECT_EQ(stream->head().header("content-type"), "text/event-stream");
    const auto snapshot = stream->next_message();
    ASSERT_TRUE(snapshot);
    EXPECT_EQ(snapshot->event, "external_coding_agent.snapshot");
  }

  constexpr int kEvents = 20;
  std::jthread producer([&] {
    for (int i = 1; i <= kEvents; ++i) {
      const auto response = post_progress(a, id, "p" + std::to_string(i));
      EXPECT_EQ(response.status, 200u) << response.body;
      if (response.status == 200u) {
        EXPECT_EQ(response.json().at("event").at("sequence_id"), i);
      }
    }
  });
  for (SseStream* stream : {&on_b, &on_c}) {
    for (int i = 1; i <= kEvents; ++i) {
      const auto message = stream->next_message(std::chrono::seconds(10));
      ASSERT_TRUE(message) << "stream ended before event " << i;
      EXPECT_EQ(sequence_id_of(*message), i);
      EXPECT_EQ(message->id, std::to_string(i));
      EXPECT_EQ(message_of(*message), "p" + std::to_string(i));
    }
  }
  producer.join();

  // Closed on A: each stream ends with the final snapshot and done, nothing repeated before.
  ASSERT_EQ(a.post(session_path(id, "/close"), "").status, 200u);
  for (SseStream* stream : {&on_b, &on_c}) {
    const auto final_snapshot = stream->next_message(std::chrono::seconds(10));
    ASSERT_TRUE(final_snapshot);
    EXPECT_EQ(final_snapshot->event, "external_coding_agent.snapshot");
    EXPECT_EQ(json::parse(final_snapshot->data).at("session").at("status"), "closed");
    const auto done = stream->next_message(std::chrono::seconds(10));
    ASSERT_TRUE(done);
    EXPECT_EQ(done->event, "done");
    EXPECT_EQ(done->data, "[DONE]");
    EXPECT_FALSE(stream->next(std::chrono::seconds(10)));
    EXPECT_TRUE(stream->completed());
  }
}

// Expects the 503 `store_unavailable` envelope, answered quickly.
void expect_store_unavailable(const std::function<HttpResponse()>& request,
                              const std::string& what) {
  const auto started = Clock::now();
  const auto response = request();
  const auto took = Clock::now() - started;
  EXPECT_EQ(response.status, 503u) << what << ": " << response.body;
  if (response.status == 503u) {
    EXPECT_EQ(response.error_code(), "store_unavailable") << what;
  }
  EXPECT_LT(took, std::chrono::seconds(5)) << what << " took too long to fail";
}

TEST(RedisScaleOut, ARedisOutageAnswers503ThenRecoversWithoutLosingAcknowledgedEvents) {
  RedisServer redis;
  // Retention far above what is posted, so every replay holds every event.
  auto gateways = start_gateways(redis, 2, {"--max-events-per-session", "100000"});
  const HttpClient a(gateways[0]->port());
  const HttpClient b(gateways[1]->port());
  const std::string id = open_session(a, "outage");
  ASSERT_FALSE(id.empty());

  // Events are posted on both gateways without pause while Redis stops underneath them; every
  // one acknowledged with 200 must survive.
  std::mutex mutex;
  std::map<std::int64_t, std::string> acknowledged;  // sequence id → message
  std::atomic<int> unavailable{0};
  // A jthread, so a failed assertion below still stops and joins it.
  std::jthread producer([&](std::stop_token stop_posting) {
    try {
      for (int i = 0; !stop_posting.stop_requested(); ++i) {
        const std::string message = "m" + std::to_string(i);
        const auto response = post_progress(i % 2 == 0 ? a : b, id, message);
        if (response.status == 200u) {
          std::lock_guard lock(mutex);
          acknowledged[response.json().at("event").at("sequence_id").as_int64()] = message;
        } else if (response.status == 503u) {
          ++unavailable;
        } else {
          ADD_FAILURE() << "unexpected answer during the outage: " << response.status << " "
                        << response.body;
          return;
        }
      }
    } catch (const std::exception& error) {
      ADD_FAILURE() << "posting failed: " << error.what();
    }
  });
  SseStream follower(gateways[1]->port(), session_path(id, "/stream?follow=true"));
  ASSERT_EQ(follower.head().status, 200u);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return acknowledged.size() >= 10;
  })) << "no progress was acknowledged before the outage";

  EXPECT_EQ(redis.stop(), 0);
  EXPECT_TRUE(eventually([&] { return unavailable >= 3; }))
      << "posting did not fail while Redis was down";
  producer.request_stop();
  producer.join();

  // Meanwhile: 503 store_unavailable, quickly, on every gateway; not ready.
  for (const HttpClient* client : {&a, &b}) {
    expect_store_unavailable([&] { return post_progress(*client, id, "while down"); },
                             "POST progress");
    expect_store_unavailable([&] { return client->get(session_path(id)); }, "GET detail");
    EXPECT_TRUE(
        eventually([&] { return client->get("/readyz").status == 503u; }, std::chrono::seconds(10)))
        << "/readyz did not report the outage";
  }
  // The follow stream ends with an error frame carrying the envelope, not with done.
  {
    std::optional<SseMessage> message;
    do {
      message = follower.next_message(std::chrono::seconds(10));
      ASSERT_TRUE(message) << "the follow stream ended without an error frame";
    } while (message->event == "external_coding_agent.progress" ||
             message->event == "external_coding_agent.snapshot");
    EXPECT_EQ(message->event, "error") << message->data;
    const auto envelope = json::parse(message->data);
    EXPECT_EQ(envelope.at("error").at("code"), "store_unavailable") << message->data;
    EXPECT_EQ(envelope.at("error").at("type"), "server_error") << message->data;
    EXPECT_FALSE(follower.next(std::chrono::seconds(10))) << "the stream went on after the error";
  }

  // Redis back: each gateway reconnects by itself.
  redis.start();
  for (const HttpClient* client : {&a, &b}) {
    EXPECT_TRUE(eventually([&] { return client->get(session_path(id)).status == 200u; }))
        << "the gateway did not recover";
    EXPECT_TRUE(eventually([&] { return client->get("/readyz").status == 200u; }))
        << "/readyz did not recover";
  }
  EXPECT_EQ(session_of(a.get(session_path(id))).at("status"), "running");

  // Nothing acknowledged was lost, and the replay is still numbered 1, 2, 3, ... (an append
  // answered 503 either happened whole or not at all).
  ASSERT_GE(acknowledged.size(), 10u);
  for (const HttpClient* client : {&a, &b}) {
    const auto replay = replayed_events(*client, id);
    std::map<std::int64_t, std::string> replayed;
    std::int64_t previous = 0;
    for (const auto& event : replay) {
      const std::int64_t sequence_id = sequence_id_of(event);
      EXPECT_EQ(sequence_id, previous + 1) << "sequence ids are 1, 2, 3, ... without gaps";
      previous = sequence_id;
      replayed[sequence_id] = message_of(event);
    }
    for (const auto& [sequence_id, message] : acknowledged) {
      const auto found = replayed.find(sequence_id);
      ASSERT_NE(found, replayed.end()) << "acknowledged event " << sequence_id << " was lost";
      EXPECT_EQ(found->second, message);
    }
  }

  // Writes and live follow work again, across gateways.
  SseStream again(gateways[1]->port(),
                  session_path(id, "/stream?follow=true&after_sequence_id=" +
                                       std::to_string(acknowledged.rbegin()->first)));
  ASSERT_EQ(again.head().status, 200u);
  ASSERT_EQ(again.next_message()->event, "external_coding_agent.snapshot");
  const auto posted = post_progress(a, id, "after recovery");
  ASSERT_EQ(posted.status, 200u) << posted.body;
  const std::int64_t new_id = posted.json().at("event").at("sequence_id").as_int64();
  EXPECT_GT(new_id, acknowledged.rbegin()->first);
  std::optional<SseMessage> live;
  do {
    live = again.next_message(std::chrono::seconds(10));
    ASSERT_TRUE(live);
  } while (sequence_id_of(*live) < new_id);
  EXPECT_EQ(sequence_id_of(*live), new_id);
  EXPECT_EQ(message_of(*live), "after recovery");
}

// Worker mode on a shared store: the worker runs on the gateway that opened its session, and a
// follow-up posted on any gateway reaches its stdin, in order.
TEST(RedisScaleOut, FollowUpsPostedOnAnyGatewayReachTheWorkerOnItsOwner) {
  RedisServer redis;
  TempDir scripts;
  const std::string echo =
      write_script(scripts, "echo.sh", "while IFS= read -r line; do echo \"got $line\"; done\n");
  auto gateways = start_gateways(redis, 2, {"--worker-command", echo});
  const HttpClient a(gateways[0]->port());
  const HttpClient b(gateways[1]->port());
  const std::string id = open_session(a, "owned");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(status_runtime(a).at("worker").at("running"), 1);
  EXPECT_EQ(status_runtime(b).at("worker").at("running"), 0);

  for (const char* message : {"one", "two", "three"}) {
    const auto posted = b.post(session_path(id, "/followups"), json_body({{"message", message}}));
    ASSERT_EQ(posted.status, 200u) << posted.body;
  }
  std::vector<std::string> echoed;
  ASSERT_TRUE(eventually([&] {
    echoed.clear();
    for (const auto& event : replayed_events(b, id)) {
      if (json::parse(event.data).at("event_type") == "subprocess.stdout")
        echoed.push_back(message_of(event));
    }
    return echoed.size() >= 3;
  })) << "the worker on A echoed "
      << echoed.size() << " follow-ups";
  EXPECT_EQ(echoed, (std::vector<std::string>{"got one", "got two", "got three"}));

  // Closed on B: the worker on A is stopped.
  ASSERT_EQ(b.post(session_path(id, "/close"), "").status, 200u);
  EXPECT_TRUE(eventually([&] { return status_runtime(a).at("worker").at("running") == 0; }));
  EXPECT_EQ(status_runtime(a).at("worker").at("exited"), 1);
}

// A gateway that dies stops renewing its lease; once it expires another gateway fails its
// sessions with a `gateway.owner_lost` event, and their workspaces open again elsewhere.
TEST(RedisScaleOut, SessionsOfADeadGatewayFailAfterItsLeaseAndReopenElsewhere) {
  RedisServer redis;
  TempDir scripts;
  const std::string sleeper = write_script(scripts, "sleep.sh", "exec sleep 1000\n");
  constexpr std::int64_t kLeaseMs = 1000;
  auto gateways = start_gateways(
      redis, 2, {"--worker-command", sleeper, "--owner-lease-ms", std::to_string(kLeaseMs)});
  const HttpClient a(gateways[0]->port());
  const HttpClient b(gateways[1]->port());
  const std::string id = open_session(a, "orphan");
  ASSERT_FALSE(id.empty());
  // While A lives, its lease holds: the session keeps running while both gateways renew their
  // leases for two lease periods (each renewal stores its time in the gateway's lease key, and
  // fails the sessions of every gateway whose lease key has expired).
  std::map<std::string, std::int64_t> renewed_at;  // lease key -> time of the first renewal seen
  std::istringstream keys(redis.cli({"--scan", "--pattern", "*lease:*"}));
  for (std::string key; std::getline(keys, key);)
    renewed_at[key] = std::stoll(redis.cli({"GET", key}));
  ASSERT_EQ(renewed_at.size(), 2u);
  ASSERT_TRUE(eventually([&] {
    for (const auto& [key, first] : renewed_at) {
      const std::string at = redis.cli({"GET", key});  // empty once expired
      if (at.empty() || std::stoll(at) < first + 2 * kLeaseMs)
        return false;
    }
    return true;
  })) << "the leases were not renewed for two periods";
  ASSERT_EQ(session_of(b.get(session_path(id))).at("status"), "running");

  gateways[0]->crash();
  ASSERT_TRUE(
      eventually([&] { return session_of(b.get(session_path(id))).at("status") == "failed"; }));
  const auto events = replayed_events(b, id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(json::parse(events.back().data).at("event_type"), "gateway.owner_lost");

  const std::string reopened = open_session(b, "orphan");
  ASSERT_FALSE(reopened.empty());
  EXPECT_NE(reopened, id);
  EXPECT_EQ(status_runtime(b).at("worker").at("running"), 1);
}

// Password-session tokens and rate limits live in Redis: a token issued by one gateway works on
// the others, and one principal has one budget across all of them.
TEST(RedisScaleOut, TokensAndRateLimitsAreSharedAcrossGateways) {
  RedisServer redis;
  const std::string prefix = random_prefix();
  std::vector<std::unique_ptr<GatewayProcess>> gateways;
  for (int i = 0; i < 2; ++i) {
    gateways.push_back(std::make_unique<GatewayProcess>(std::vector<std::string>{
        "--auth-mode", "password-session", "--auth-password", "hunter2", "--store", redis.url(),
        "--redis-prefix", prefix, "--rate-limit-max-requests", "6", "--rate-limit-window-seconds",
        "3600"}));
  }
  const auto login = HttpClient(gateways[0]->port())
                         .post("/gateway/auth/session", json_body({{"password", "hunter2"}}));
  ASSERT_EQ(login.status, 200u) << login.body;
  const std::string token(login.json().at("access_token").as_string());
  const HttpClient a(gateways[0]->port(), token);
  const HttpClient b(gateways[1]->port(), token);
  EXPECT_EQ(HttpClient(gateways[1]->port(), token + "0").get("/gateway/status").status, 401u);

  // Six requests in the window, three on each gateway; the seventh is refused on either.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a.get("/gateway/status").status, 200u);
    EXPECT_EQ(b.get("/gateway/status").status, 200u);
  }
  const auto refused = b.get("/gateway/status");
  EXPECT_EQ(refused.status, 429u) << refused.body;
  EXPECT_EQ(refused.error_code(), "rate_limited");
  EXPECT_EQ(a.get("/gateway/status").status, 429u);
}

// A follow-up the owner cannot write to its worker's stdin was already answered 200 by whichever
// gateway took it: the owner records the failure on the session instead.
TEST(RedisScaleOut, AFollowUpTheWorkerCannotTakeFailsTheSessionOnItsOwner) {
  RedisServer redis;
  TempDir scripts;
  const std::string closer =
      write_script(scripts, "closer.sh", "exec 0<&-\necho closed\nexec sleep 1000\n");
  auto gateways =
      start_gateways(redis, 2, {"--worker-command", closer, "--worker-kill-grace-ms", "100"});
  const HttpClient a(gateways[0]->port());
  const HttpClient b(gateways[1]->port());
  const std::string id = open_session(a, "closed-stdin");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(eventually([&] { return !replayed_events(b, id).empty(); }));  // "closed"

  const auto posted = b.post(session_path(id, "/followups"), json_body({{"message", "hello"}}));
  EXPECT_EQ(posted.status, 200u) << posted.body;
  ASSERT_TRUE(
      eventually([&] { return session_of(b.get(session_path(id))).at("status") == "failed"; }));
  bool recorded = false;
  for (const auto& event : replayed_events(b, id))
    recorded = recorded || json::parse(event.data).at("event_type") == "subprocess.stdin_error";
  EXPECT_TRUE(recorded);
}

}  // namespace
}  // namespace tau::test
