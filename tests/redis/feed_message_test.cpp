// The Redis feed's wire format, without Redis: what the script publishes (src/redis/gateway.lua,
// its `publish`) decodes to the session and event it describes, and nothing else decodes.
#include "redis/feed_message.h"

#include <gtest/gtest.h>

#include <string>

namespace tau::redis {
namespace {

using core::SessionStatus;

FeedMessage sample(bool with_event) {
  FeedMessage message;
  message.session = core::SessionSnapshot{
      "eca_1", "ws-1", SessionStatus::running, 1'700'000'000'000, 1'700'000'000'500, 2};
  if (with_event)
    message.event = core::SessionEvent{7, "followup", "do \"this\"\n", 1'700'000'000'500};
  return message;
}

void expect_same(const FeedMessage& a, const FeedMessage& b) {
  EXPECT_EQ(a.session.session_id, b.session.session_id);
  EXPECT_EQ(a.session.workspace_id, b.session.workspace_id);
  EXPECT_EQ(a.session.status, b.session.status);
  EXPECT_EQ(a.session.started_unix_ms, b.session.started_unix_ms);
  EXPECT_EQ(a.session.last_activity_unix_ms, b.session.last_activity_unix_ms);
  EXPECT_EQ(a.session.queued_followups, b.session.queued_followups);
  ASSERT_EQ(a.event.has_value(), b.event.has_value());
  if (a.event) {
    EXPECT_EQ(a.event->sequence_id, b.event->sequence_id);
    EXPECT_EQ(a.event->event_type, b.event->event_type);
    EXPECT_EQ(a.event->message, b.event->message);
    EXPECT_EQ(a.event->timestamp_unix_ms, b.event->timestamp_unix_ms);
    EXPECT_EQ(a.event->data, b.event->data);
  }
}

TEST(FeedMessageTest, DecodesWhatTheScriptPublishes) {
  // As cjson writes them: an event, and a change of state only (an empty table is `{}`).
  const auto with_event =
      decode_feed_message(R"(["eca_1","ws-1","running",1700000000000,1700000000500,2,)"
                          R"([7,"followup","do \"this\"\n",1700000000500]])");
  ASSERT_TRUE(with_event);
  expect_same(*with_event, sample(true));

  const auto state_only =
      decode_feed_message(R"(["eca_1","ws-1","closed",1700000000000,1700000000500,0,{}])");
  ASSERT_TRUE(state_only);
  EXPECT_EQ(state_only->session.status, SessionStatus::closed);
  EXPECT_EQ(state_only->session.queued_followups, 0u);
  EXPECT_FALSE(state_only->event);
  EXPECT_FALSE(decode_feed_message(R"(["s","w","failed",1,2,0,[]])")->event);
  EXPECT_EQ(with_event->event->data, "");  // an event without data has none

  // A typed event's data comes last, as a string (cjson escapes '/' too).
  const auto with_data =
      decode_feed_message(R"(["eca_1","ws-1","running",1700000000000,1700000000500,2,)"
                          R"([8,"agent.tool_call","edited",1700000000500,)"
                          R"("{\"path\":\"a\/b.cpp\",\"n\":[1]}"]])");
  ASSERT_TRUE(with_data);
  ASSERT_TRUE(with_data->event);
  EXPECT_EQ(with_data->event->event_type, "agent.tool_call");
  EXPECT_EQ(with_data->event->data, R"({"path":"a/b.cpp","n":[1]})");
}

TEST(FeedMessageTest, NumbersMayArriveAsIntegralDoubles) {
  const auto message =
      decode_feed_message(R"(["s","w","timed_out",1.7e12,1700000000500.0,3.0,[4.0,"t","m",1e3]])");
  ASSERT_TRUE(message);
  EXPECT_EQ(message->session.status, SessionStatus::timed_out);
  EXPECT_EQ(message->session.started_unix_ms, 1'700'000'000'000);
  EXPECT_EQ(message->session.last_activity_unix_ms, 1'700'000'000'500);
  EXPECT_EQ(message->session.queued_followups, 3u);
  EXPECT_EQ(message->event->sequence_id, 4u);
  EXPECT_EQ(message->event->timestamp_unix_ms, 1000);
}

TEST(FeedMessageTest, EncodeAndDecodeRoundTrip) {
  for (bool with_event : {false, true}) {
    const FeedMessage message = sample(with_event);
    const auto decoded = decode_feed_message(encode_feed_message(message));
    ASSERT_TRUE(decoded) << encode_feed_message(message);
    expect_same(*decoded, message);
  }
  FeedMessage extremes = sample(true);
  extremes.session.started_unix_ms = -1;
  extremes.event->sequence_id = UINT64_MAX;
  const auto decoded = decode_feed_message(encode_feed_message(extremes));
  ASSERT_TRUE(decoded);
  expect_same(*decoded, extremes);
  EXPECT_EQ(encode_feed_message(sample(false)),
            R"(["eca_1","ws-1","running",1700000000000,1700000000500,2,{}])");
}

TEST(FeedMessageTest, DataIsEncodedOnlyWhenAnEventHasIt) {
  FeedMessage typed = sample(true);
  typed.event->data = R"({"tool":"edit","quote":"\""})";
  const std::string encoded = encode_feed_message(typed);
  EXPECT_EQ(encoded, R"(["eca_1","ws-1","running",1700000000000,1700000000500,2,)"
                     R"([7,"followup","do \"this\"\n",1700000000500,)"
                     R"("{\"tool\":\"edit\",\"quote\":\"\\\"\"}"]])");
  const auto decoded = decode_feed_message(encoded);
  ASSERT_TRUE(decoded);
  expect_same(*decoded, typed);
  // Without data, the event is the four elements it always was.
  EXPECT_EQ(encode_feed_message(sample(true)),
            R"(["eca_1","ws-1","running",1700000000000,1700000000500,2,)"
            R"([7,"followup","do \"this\"\n",1700000000500]])");
}

TEST(FeedMessageTest, AnythingElseIsNotAMessage) {
  for (const char* payload : {
           "",
           "not json",
           "{}",
           "[]",
           R"(["s","w","running",1,2,0])",         // no event part
           R"(["s","w","running",1,2,0,{},1])",    // one too many
           R"(["s","w","sleeping",1,2,0,{}])",     // unknown status
           R"(["s","w","Running",1,2,0,{}])",      // statuses are lower case
           R"([1,"w","running",1,2,0,{}])",        // the id is a string
           R"(["s",null,"running",1,2,0,{}])",     // so is the workspace
           R"(["s","w","running","1",2,0,{}])",    // a time is a number
           R"(["s","w","running",1.5,2,0,{}])",    // an integer
           R"(["s","w","running",1,2,-1,{}])",     // a count is not negative
           R"(["s","w","running",1e300,2,0,{}])",  // nor out of range
           R"(["s","w","running",9223372036854775808,2,0,{}])",
           R"(["s","w","running",1,2,0,{"a":1}])",              // the event is an array
           R"(["s","w","running",1,2,0,[1,"t","m"]])",          // of four
           R"(["s","w","running",1,2,0,[1,"t","m",3,"d",4]])",  // or five
           R"(["s","w","running",1,2,0,[1,"t","m",3,{}]])",     // whose data is a string
           R"(["s","w","running",1,2,0,[1,"t","m",3,""]])",     // never empty (then left out)
           R"(["s","w","running",1,2,0,[-1,"t","m",3]])",       // ids are not negative
           R"(["s","w","running",1,2,0,[1,2,"m",3]])",          // the type is a string
           R"(["s","w","running",1,2,0,[1,"t","m",3])",         // truncated
           R"(["s","w","running",1,2,0,{}] x)",                 // trailing text
       }) {
    EXPECT_FALSE(decode_feed_message(payload)) << payload;
  }
}

TEST(FeedMessageTest, TheSessionIdIsReadWithoutTheRest) {
  EXPECT_EQ(feed_session_id(R"(["eca_1","ws",)"), "eca_1");  // the rest may be anything
  EXPECT_EQ(feed_session_id(encode_feed_message(sample(true))), "eca_1");
  EXPECT_EQ(feed_session_id(R"( [ "a" ])"), "a");
  // Escapes are decoded, as the full decoder decodes them.
  EXPECT_EQ(feed_session_id(R"(["a\"b\\c\u00e9\n",1])"), "a\"b\\c\xc3\xa9\n");
  EXPECT_EQ(feed_session_id(R"([""])"), "");
  FeedMessage escaped = sample(false);
  escaped.session.session_id = "quote\" and \\ and \x01";
  EXPECT_EQ(feed_session_id(encode_feed_message(escaped)), escaped.session.session_id);

  for (const char* payload : {"", "[", "[\"abc", "\"abc\"", "[1,\"a\"]", "[[\"a\"]]", "[{}]",
                              "{\"a\":1}", "[null]", "x[\"a\"]", "[\"\xff\"]"}) {
    EXPECT_FALSE(feed_session_id(payload)) << payload;
  }
}

}  // namespace
}  // namespace tau::redis
