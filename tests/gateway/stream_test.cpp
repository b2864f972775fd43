// SSE replay over HTTP: frame order, cursors from the query and Last-Event-ID, limits, errors.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    id = open_session(client, "stream");
    for (int i = 1; i <= 5; ++i) {
      const std::string route = i == 3 ? "/followups" : "/progress";
      ASSERT_EQ(
          client.post(session_path(id, route), json_body({{"message", "m" + std::to_string(i)}}))
              .status,
          200u);
    }
  }

  // The sequence ids of the replayed event frames, checking each frame's shape.
  std::vector<std::int64_t> replayed_ids(const HttpResponse& response,
                                         const json::value& expected_cursor) {
    EXPECT_EQ(response.status, 200u) << response.body;
    EXPECT_EQ(response.header("content-type"), "text/event-stream");
    EXPECT_EQ(response.header("cache-control"), "no-cache");
    EXPECT_EQ(response.header("x-accel-buffering"), "no");
    const auto messages = parse_sse(response.body);
    EXPECT_GE(messages.size(), 2u);
    if (messages.size() < 2)
      return {};
    EXPECT_EQ(messages.front().event, "external_coding_agent.snapshot");
    EXPECT_EQ(messages.front().id, "");
    const auto snapshot = json::parse(messages.front().data);
    EXPECT_EQ(snapshot.at("session").at("session_id").as_string(), id);
    EXPECT_EQ(snapshot.at("replay_after_sequence_id"), expected_cursor);
    EXPECT_EQ(messages.back().event, "done");
    EXPECT_EQ(messages.back().data, "[DONE]");
    std::vector<std::int64_t> ids;
    for (std::size_t i = 1; i + 1 < messages.size(); ++i) {
      EXPECT_EQ(messages[i].event, "external_coding_agent.progress");
      const auto event = json::parse(messages[i].data);
      EXPECT_EQ(messages[i].id, std::to_string(event.at("sequence_id").as_int64()));
      ids.push_back(event.at("sequence_id").as_int64());
    }
    return ids;
  }

  GatewayProcess gateway;
  HttpClient client{gateway.port()};
  std::string id;
};

using Ids = std::vector<std::int64_t>;

TEST_F(StreamTest, ReplaysEveryRetainedEventWithoutACursor) {
  const auto response = client.get(session_path(id, "/stream"));
  EXPECT_EQ(replayed_ids(response, nullptr), (Ids{1, 2, 3, 4, 5}));
  const auto messages = parse_sse(response.body);
  const auto third = json::parse(messages[3].data);
  EXPECT_EQ(third.at("event_type").as_string(), "followup");
  EXPECT_EQ(third.at("message").as_string(), "m3");
  EXPECT_GT(third.at("timestamp_unix_ms").as_int64(), 0);
}

TEST_F(StreamTest, QueryCursorReplaysOnlyLaterEvents) {
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream?after_sequence_id=2")), 2),
            (Ids{3, 4, 5}));
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream?after_sequence_id=5")), 5), Ids{});
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream?after_sequence_id=0")), 0),
            (Ids{1, 2, 3, 4, 5}));
}

TEST_F(StreamTest, LastEventIdHeaderIsTheCursorWhenTheQueryHasNone) {
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream"), {{"Last-Event-ID", "3"}}), 3),
            (Ids{4, 5}));
  // The query parameter wins over the header.
  EXPECT_EQ(
      replayed_ids(
          client.get(session_path(id, "/stream?after_sequence_id=1"), {{"Last-Event-ID", "4"}}), 1),
      (Ids{2, 3, 4, 5}));
}

TEST_F(StreamTest, LimitCapsTheReplay) {
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream?limit=2")), nullptr), (Ids{1, 2}));
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream?after_sequence_id=3&limit=1")), 3),
            (Ids{4}));
  EXPECT_EQ(replayed_ids(client.get(session_path(id, "/stream?limit=100000")), nullptr),
            (Ids{1, 2, 3, 4, 5}));
}

TEST_F(StreamTest, BadCursorsAndLimitsAreRefusedWithJsonErrors) {
  for (const std::string cursor : {"-1", "abc", "1.5", "", "%2B1", "18446744073709551616"}) {
    const auto response = client.get(session_path(id, "/stream?after_sequence_id=" + cursor));
    EXPECT_EQ(response.status, 400u) << cursor;
    EXPECT_EQ(response.error_code(), "invalid_cursor") << cursor;
  }
  const auto header = client.get(session_path(id, "/stream"), {{"Last-Event-ID", "x7"}});
  EXPECT_EQ(header.status, 400u);
  EXPECT_EQ(header.error_code(), "invalid_cursor");
  for (const std::string limit : {"0", "-1", "two", "1.0", ""}) {
    const auto response = client.get(session_path(id, "/stream?limit=" + limit));
    EXPECT_EQ(response.status, 400u) << limit;
    EXPECT_EQ(response.error_code(), "invalid_limit") << limit;
  }
}

TEST_F(StreamTest, UnknownSessionIsAJson404NotAStream) {
  const auto response = client.get(session_path("eca_missing", "/stream"));
  EXPECT_EQ(response.status, 404u);
  EXPECT_EQ(response.error_code(), "external_coding_agent_session_not_found");
}

TEST_F(StreamTest, EndedSessionsStayReplayable) {
  ASSERT_EQ(client.post(session_path(id, "/close"), "").status, 200u);
  const auto response = client.get(session_path(id, "/stream?after_sequence_id=4"));
  EXPECT_EQ(replayed_ids(response, 4), (Ids{5}));
  const auto snapshot = json::parse(parse_sse(response.body).front().data);
  EXPECT_EQ(snapshot.at("session").at("status").as_string(), "closed");
}

TEST_F(StreamTest, MultiLineMessagesSurviveTheFrame) {
  const std::string message = "line one\nline two\r\nline three";
  ASSERT_EQ(client.post(session_path(id, "/progress"), json_body({{"message", message}})).status,
            200u);
  const auto messages = parse_sse(client.get(session_path(id, "/stream?after_sequence_id=5")).body);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(json::parse(messages[1].data).at("message").as_string(), message);
}

TEST(StreamRetention, OnlyTheNewestEventsAreReplayedAndIdsKeepCounting) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--max-events-per-session", "3"});
  HttpClient client(gateway.port());
  const auto opened = client.post(kSessions, json_body({{"workspace_id", "w"}}));
  const std::string id(opened.json().at("session").at("session_id").as_string());
  for (int i = 1; i <= 5; ++i) {
    ASSERT_EQ(client.post(session_path(id, "/progress"), json_body({{"message", "m"}})).status,
              200u);
  }
  const auto messages = parse_sse(client.get(session_path(id, "/stream")).body);
  ASSERT_EQ(messages.size(), 5u);
  EXPECT_EQ(messages[1].id, "3");
  EXPECT_EQ(messages[3].id, "5");
  const auto next = client.post(session_path(id, "/progress"), json_body({{"message", "m"}}));
  EXPECT_EQ(next.json().at("event").at("sequence_id").as_int64(), 6);
}

}  // namespace
}  // namespace tau::test
