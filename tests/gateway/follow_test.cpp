// Live follow streams against the real binary: live delivery, terminal endings, resume cursors,
// the gap signal, retry and heartbeats, the query token, stream limits and slow consumers.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

// localhost-dev with a rate limit that the tests' polling and posting never reach.
std::vector<std::string> dev_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--auth-mode", "localhost-dev", "--rate-limit-max-requests",
                                   "1000000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

void post_progress(const HttpClient& client, const std::string& id, const std::string& message) {
  const auto response =
      client.post(session_path(id, "/progress"), json_body({{"message", message}}));
  ASSERT_EQ(response.status, 200u) << response.body;
}

std::int64_t sequence_id_of(const SseMessage& message) {
  EXPECT_EQ(message.event, "external_coding_agent.progress");
  const auto id = json::parse(message.data).at("sequence_id").as_int64();
  EXPECT_EQ(message.id, std::to_string(id));
  return id;
}

std::int64_t open_streams(const HttpClient& client) {
  return status_runtime(client).at("open_streams").as_int64();
}

// Polls the status until `open_streams` reaches `expected` (the gateway notices a departed client
// on its own time), failing after a generous deadline.
void expect_open_streams_reach(const HttpClient& client, std::int64_t expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (open_streams(client) != expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(open_streams(client), expected);
}

TEST(Follow, DeliversLiveEventsThenTheTerminalSnapshotAndDone) {
  GatewayProcess gateway(dev_args());
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  post_progress(client, id, "before");

  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  ASSERT_EQ(stream.head().status, 200u);
  EXPECT_EQ(stream.head().header("content-type"), "text/event-stream");
  EXPECT_EQ(stream.head().header("cache-control"), "no-cache");
  EXPECT_EQ(stream.head().header("x-accel-buffering"), "no");
  auto snapshot = stream.next_message();
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->event, "external_coding_agent.snapshot");
  EXPECT_EQ(snapshot->retry_ms, 3000);
  EXPECT_EQ(sequence_id_of(*stream.next_message()), 1);

  for (int i = 0; i < 3; ++i) {
    post_progress(client, id, "live " + std::to_string(i));
    const auto live = stream.next_message();
    ASSERT_TRUE(live);
    EXPECT_EQ(sequence_id_of(*live), 2 + i);
    EXPECT_EQ(json::parse(live->data).at("message").as_string(), "live " + std::to_string(i));
  }
  EXPECT_EQ(open_streams(client), 1);

  ASSERT_EQ(client.post(session_path(id, "/close"), "").status, 200u);
  const auto final_snapshot = stream.next_message();
  ASSERT_TRUE(final_snapshot);
  EXPECT_EQ(final_snapshot->event, "external_coding_agent.snapshot");
  EXPECT_EQ(json::parse(final_snapshot->data).at("session").at("status").as_string(), "closed");
  const auto done = stream.next_message();
  ASSERT_TRUE(done);
  EXPECT_EQ(done->event, "done");
  EXPECT_EQ(done->data, "[DONE]");
  EXPECT_FALSE(stream.next());
  EXPECT_TRUE(stream.completed());
  expect_open_streams_reach(client, 0);
}

TEST(Follow, ReapedSessionsEndTheirStreamsAsTimedOut) {
  GatewayProcess gateway(dev_args());
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  SseStream stream(gateway.port(), session_path(id, "/stream?follow=1"));
  ASSERT_TRUE(stream.next_message());  // snapshot
  const auto reaped = client.post("/gateway/external-coding-agent/reap",
                                  json_body({{"now_unix_ms", std::int64_t{1} << 50}}));
  ASSERT_EQ(reaped.json().at("reaped_count").as_int64(), 1);
  const auto final_snapshot = stream.next_message();
  ASSERT_TRUE(final_snapshot);
  EXPECT_EQ(json::parse(final_snapshot->data).at("session").at("status").as_string(), "timed_out");
  EXPECT_EQ(stream.next_message()->event, "done");
}

TEST(Follow, FollowingAnEndedSessionReplaysAndEndsAtOnce) {
  GatewayProcess gateway(dev_args());
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  post_progress(client, id, "only");
  ASSERT_EQ(client.post(session_path(id, "/close"), "").status, 200u);
  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
  EXPECT_EQ(sequence_id_of(*stream.next_message()), 1);
  const auto final_snapshot = stream.next_message();
  EXPECT_EQ(json::parse(final_snapshot->data).at("session").at("status").as_string(), "closed");
  EXPECT_EQ(stream.next_message()->event, "done");
  EXPECT_FALSE(stream.next());
}

TEST(Follow, ResumesFromEachCursorSourceWithoutLossOrRepeats) {
  GatewayProcess gateway(dev_args());
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  for (int i = 0; i < 4; ++i)
    post_progress(client, id, "e");
  const std::vector<std::pair<std::string, Headers>> cursors = {
      {"&after_sequence_id=2", {}},
      {"&last_event_id=2", {}},
      {"", {{"Last-Event-ID", "2"}}},
      {"&last_event_id=2", {{"Last-Event-ID", "0"}}},  // the query wins over the header
  };
  for (const auto& [query, headers] : cursors) {
    SseStream stream(gateway.port(), session_path(id, "/stream?follow=true" + query), headers);
    const auto snapshot = stream.next_message();
    EXPECT_EQ(json::parse(snapshot->data).at("replay_after_sequence_id").as_int64(), 2) << query;
    EXPECT_EQ(sequence_id_of(*stream.next_message()), 3) << query;
    EXPECT_EQ(sequence_id_of(*stream.next_message()), 4) << query;
  }
  // A cursor beyond the newest event: the next live event past it is the first one sent.
  {
    SseStream ahead(gateway.port(), session_path(id, "/stream?follow=true&after_sequence_id=5"));
    ASSERT_TRUE(ahead.next_message());  // snapshot
    post_progress(client, id, "fifth");
    post_progress(client, id, "sixth");
    EXPECT_EQ(sequence_id_of(*ahead.next_message()), 6);
  }
  EXPECT_EQ(client.get(session_path(id, "/stream?follow=true&last_event_id=x")).error_code(),
            "invalid_cursor");
  EXPECT_EQ(client.get(session_path(id, "/stream?follow=yes")).error_code(), "invalid_follow");
}

TEST(Follow, NothingIsLostOrRepeatedWhileEventsArriveDuringTheReplay) {
  GatewayProcess gateway(dev_args({"--max-events-per-session", "10000"}));
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  constexpr int kEvents = 400;
  std::atomic<int> posted{0};
  std::thread producer([&] {
    for (int i = 0; i < kEvents; ++i) {
      post_progress(client, id, "e" + std::to_string(i));
      ++posted;
    }
  });
  // Connect while the producer runs, so some events are replayed and the rest arrive live.
  std::vector<std::int64_t> received;
  {
    while (posted < kEvents / 4)
      std::this_thread::yield();
    SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
    ASSERT_TRUE(stream.next_message());  // snapshot
    while (received.size() < kEvents) {
      const auto message = stream.next_message();
      ASSERT_TRUE(message);
      received.push_back(sequence_id_of(*message));
    }
  }
  producer.join();
  for (int i = 0; i < kEvents; ++i)
    ASSERT_EQ(received[i], i + 1);
}

TEST(Follow, GapFrameFollowsTheSnapshotWhenRetentionDroppedEventsAfterTheCursor) {
  GatewayProcess gateway(dev_args({"--max-events-per-session", "3"}));
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  for (int i = 0; i < 6; ++i)
    post_progress(client, id, "e");

  for (const std::string follow : {"true", "false"}) {
    SseStream stream(gateway.port(),
                     session_path(id, "/stream?after_sequence_id=1&follow=" + follow));
    EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
    const auto gap = stream.next_message();
    ASSERT_TRUE(gap);
    EXPECT_EQ(gap->event, "external_coding_agent.gap");
    EXPECT_EQ(json::parse(gap->data), json::parse(R"({"requested_after_sequence_id":1,
                                                     "first_available_sequence_id":4})"));
    EXPECT_EQ(sequence_id_of(*stream.next_message()), 4);
  }
  // No gap when the cursor is just before the oldest retained event, or without a cursor.
  for (const std::string query : {"?after_sequence_id=3", ""}) {
    const auto messages = parse_sse(client.get(session_path(id, "/stream" + query)).body);
    ASSERT_GE(messages.size(), 2u);
    EXPECT_EQ(messages[1].event, "external_coding_agent.progress") << query;
  }
}

TEST(Follow, RetryHintAndHeartbeatsFollowTheirFlags) {
  GatewayProcess gateway(
      {"--auth-mode", "localhost-dev", "--sse-retry-ms", "1234", "--sse-heartbeat-ms", "50"});
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  // Every stream, follow or not, starts with the retry hint.
  EXPECT_EQ(client.get(session_path(id, "/stream")).body.rfind("retry: 1234\n", 0), 0u);
  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  EXPECT_EQ(stream.next()->retry_ms, 1234);
  const auto heartbeat = stream.next();
  ASSERT_TRUE(heartbeat);
  EXPECT_EQ(heartbeat->event, ":");
  EXPECT_EQ(heartbeat->data, "keepalive");
}

TEST(Follow, StreamAloneAcceptsTheTokenInItsQuery) {
  GatewayProcess gateway({"--auth-token", "query-token", "--rate-limit-max-requests", "1000000"});
  HttpClient authorized(gateway.port(), "query-token");
  HttpClient anonymous(gateway.port());
  const std::string id = open_session(authorized, "follow");
  SseStream stream(gateway.port(),
                   session_path(id, "/stream?follow=true&access_token=query-token"));
  EXPECT_EQ(stream.head().status, 200u);
  EXPECT_EQ(anonymous.get(session_path(id, "/stream?access_token=wrong")).error_code(),
            "unauthorized");
  EXPECT_EQ(anonymous.get("/gateway/status?access_token=query-token").error_code(), "unauthorized");
  EXPECT_EQ(anonymous.get(session_path(id) + "?access_token=query-token").error_code(),
            "unauthorized");
  EXPECT_EQ(gateway.stderr_text().find("query-token"), std::string::npos);
}

TEST(Follow, MaxStreamsLimitsFollowStreamsAndDepartedClientsFreeTheirSlot) {
  GatewayProcess gateway(dev_args({"--max-streams", "1"}));
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  auto first = std::make_unique<SseStream>(gateway.port(), session_path(id, "/stream?follow=true"));
  ASSERT_TRUE(first->next_message());
  const auto refused = client.get(session_path(id, "/stream?follow=true"));
  EXPECT_EQ(refused.status, 503u);
  EXPECT_EQ(refused.error_code(), "stream_limit_reached");
  // Replays that end at once are not limited.
  EXPECT_EQ(client.get(session_path(id, "/stream")).status, 200u);
  // (The replay's own count goes once its coroutine has finished, a moment after its last byte.)
  expect_open_streams_reach(client, 1);

  first->disconnect();
  expect_open_streams_reach(client, 0);
  SseStream second(gateway.port(), session_path(id, "/stream?follow=true"));
  EXPECT_EQ(second.head().status, 200u);
}

TEST(Follow, StreamMaxDurationEndsTheStreamCleanlyWithoutDone) {
  GatewayProcess gateway(dev_args({"--sse-stream-max-ms", "100"}));
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  SseStream stream(gateway.port(), session_path(id, "/stream?follow=true"));
  EXPECT_EQ(stream.next_message()->event, "external_coding_agent.snapshot");
  EXPECT_FALSE(stream.next_message()) << "the stream must end without a done frame";
  EXPECT_TRUE(stream.completed());
}

// A client connection that sends its request and then never reads, with a tiny receive buffer.
class StalledReader {
 public:
  StalledReader(std::uint16_t port, const std::string& target) : socket_(io_) {
    socket_.open(boost::asio::ip::tcp::v4());
    socket_.set_option(boost::asio::socket_base::receive_buffer_size(4096));
    // read_to_end() gives up after 20 s of silence instead of hanging the test.
    const timeval timeout{20, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    boost::asio::write(socket_, boost::asio::buffer(request));
  }
  // Reads everything until the server closes the connection.
  std::string read_to_end() {
    std::string received;
    char chunk[65536];
    ssize_t got;
    // Plain recv, so that SO_RCVTIMEO bounds each wait (Asio would poll past it).
    while ((got = ::recv(socket_.native_handle(), chunk, sizeof chunk, 0)) > 0) {
      received.append(chunk, static_cast<std::size_t>(got));
    }
    return received;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
};

TEST(Follow, AStalledReaderIsCutOffWhileOthersKeepReceiving) {
  GatewayProcess gateway(
      dev_args({"--sse-max-buffered-bytes", "65536", "--max-events-per-session", "100000"}));
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  const std::string target = session_path(id, "/stream?follow=true");
  StalledReader stalled(gateway.port(), target);
  SseStream healthy(gateway.port(), target);
  ASSERT_TRUE(healthy.next_message());  // snapshot
  expect_open_streams_reach(client, 2);

  // Far more than the socket buffers and the backlog limit hold together.
  constexpr int kEvents = 600;
  const std::string payload(16000, 'x');
  for (int i = 1; i <= kEvents; ++i) {
    post_progress(client, id, payload);
    const auto received = healthy.next_message();
    ASSERT_TRUE(received) << i;
    ASSERT_EQ(sequence_id_of(*received), i)
        << received->data.substr(0, 80) << " id=" << received->id;
  }
  expect_open_streams_reach(client, 1);  // the stalled one is gone
  const std::string partial = stalled.read_to_end();
  EXPECT_EQ(partial.find("event: done"), std::string::npos);
  EXPECT_LT(partial.size(), kEvents * payload.size());

  ASSERT_EQ(client.post(session_path(id, "/close"), "").status, 200u);
  EXPECT_EQ(healthy.next_message()->event, "external_coding_agent.snapshot");
  EXPECT_EQ(healthy.next_message()->event, "done");
}

TEST(Follow, AReaderThatStopsReadingOnAQuietSessionIsCutOffByTheWriteTimeout) {
  // Heartbeats every 50 ms: a write blocked for max(2 heartbeats, 1 s) ends the stream.
  // The backlog limit is set far above what is posted, so only the write timeout can act.
  GatewayProcess gateway(
      dev_args({"--sse-heartbeat-ms", "50", "--sse-max-buffered-bytes", "67108864"}));
  HttpClient client(gateway.port());
  const std::string id = open_session(client, "follow");
  StalledReader stalled(gateway.port(), session_path(id, "/stream?follow=true"));
  expect_open_streams_reach(client, 1);
  // Far more than the socket buffers hold, then quiet: the stream's write stays blocked.
  const std::string payload(200000, 'x');
  for (int i = 0; i < 64; ++i)
    post_progress(client, id, payload);
  expect_open_streams_reach(client, 0);
  EXPECT_EQ(stalled.read_to_end().find("event: done"), std::string::npos);
}

}  // namespace
}  // namespace tau::test
