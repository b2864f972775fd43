#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "agent/acp_client.h"
#include "agent/agent_test_support.h"
#include "agent/text_coalescer.h"

namespace tau::agent {
namespace {

using boost::json::object;
using boost::json::parse;
using boost::json::serialize;
using boost::json::value;
using testing::event_types_of;
using testing::line_json;
using testing::only_event;

std::string chunk(std::string_view kind, std::string_view text, std::string_view message_id = {}) {
  object update{{"sessionUpdate", kind}, {"content", {{"type", "text"}, {"text", text}}}};
  if (!message_id.empty())
    update["messageId"] = message_id;
  return serialize(object{{"jsonrpc", "2.0"},
                          {"method", "session/update"},
                          {"params", {{"sessionId", "s"}, {"update", std::move(update)}}}});
}

std::string message_chunk(std::string_view text, std::string_view message_id = {}) {
  return chunk("agent_message_chunk", text, message_id);
}

std::string tool_call_line(std::string_view id) {
  return serialize(
      object{{"jsonrpc", "2.0"},
             {"method", "session/update"},
             {"params",
              {{"sessionId", "s"},
               {"update", {{"sessionUpdate", "tool_call"}, {"toolCallId", id}, {"title", "t"}}}}}});
}

// An ACP connection in its first turn, started at t=0.
class AgentCoalescingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Output started = client_.start(0);
    Output created =
        client_.on_line(serialize(object{{"jsonrpc", "2.0"},
                                         {"id", line_json(started.lines_to_agent[0]).at("id")},
                                         {"result", {{"protocolVersion", 1}}}}),
                        0);
    client_.on_line(serialize(object{{"jsonrpc", "2.0"},
                                     {"id", line_json(created.lines_to_agent[0]).at("id")},
                                     {"result", {{"sessionId", "s"}}}}),
                    0);
    Output prompted = client_.prompt("go", 0);
    prompt_id_ = line_json(prompted.lines_to_agent[0]).at("id");
  }

  std::string end_turn_line() const {
    return serialize(
        object{{"jsonrpc", "2.0"}, {"id", prompt_id_}, {"result", {{"stopReason", "end_turn"}}}});
  }

  AcpClient client_{AgentOptions{.workspace_dir = "/w"}};
  value prompt_id_;
};

TEST_F(AgentCoalescingTest, ChunksWithinFiftyMillisecondsBecomeOneEventWhenPolled) {
  EXPECT_TRUE(client_.on_line(message_chunk("Hel"), 100).events.empty());
  EXPECT_TRUE(client_.on_line(message_chunk("lo, "), 110).events.empty());
  EXPECT_TRUE(client_.on_line(message_chunk("world"), 149).events.empty());
  ASSERT_EQ(client_.next_flush_ms(), 150);  // 50 ms after the first piece
  EXPECT_TRUE(client_.poll(149).events.empty());

  Output flushed = client_.poll(150);
  const AgentEvent message = only_event(flushed, event_types::message);
  EXPECT_EQ(message.data.at("text"), "Hello, world");
  EXPECT_EQ(message.data.at("turn"), 1);
  EXPECT_FALSE(message.data.at("message_id").as_string().empty());
  EXPECT_EQ(message.data.at("raw").as_array().size(), 3u);
  EXPECT_EQ(message.data.at("raw").at(0).at("content").at("text"), "Hel");
  EXPECT_FALSE(client_.next_flush_ms().has_value());
  EXPECT_TRUE(client_.poll(1000).events.empty());
}

TEST_F(AgentCoalescingTest, APieceArrivingWhenTheTextIsDueIsLoggedWithIt) {
  client_.on_line(message_chunk("a"), 100);
  Output out = client_.on_line(message_chunk("b"), 150);
  EXPECT_EQ(only_event(out, event_types::message).data.at("text"), "ab");
  // The next piece starts a new window, of the same message.
  client_.on_line(message_chunk("c"), 160);
  EXPECT_EQ(client_.next_flush_ms(), 210);
  Output next = client_.poll(210);
  EXPECT_EQ(only_event(next, event_types::message).data.at("text"), "c");
  EXPECT_EQ(next.events[0].data.at("message_id"), out.events[0].data.at("message_id"));
}

TEST_F(AgentCoalescingTest, AToolCallFlushesPendingTextFirst) {
  client_.on_line(message_chunk("Let me "), 100);
  client_.on_line(message_chunk("look."), 101);
  Output out = client_.on_line(tool_call_line("c1"), 102);
  ASSERT_EQ(event_types_of(out), (std::vector<std::string>{"agent.message", "agent.tool_call"}));
  EXPECT_EQ(out.events[0].data.at("text"), "Let me look.");
  EXPECT_FALSE(client_.next_flush_ms().has_value());

  // Text after the tool call is another message.
  client_.on_line(message_chunk("Done."), 103);
  Output after = client_.poll(153);
  EXPECT_NE(only_event(after, event_types::message).data.at("message_id"),
            out.events[0].data.at("message_id"));
}

TEST_F(AgentCoalescingTest, TheTurnsEndFlushesPendingTextFirst) {
  client_.on_line(message_chunk("bye"), 100);
  Output out = client_.on_line(end_turn_line(), 101);
  ASSERT_EQ(event_types_of(out), (std::vector<std::string>{"agent.message", "agent.turn_ended"}));
  EXPECT_EQ(out.events[0].data.at("text"), "bye");
}

TEST_F(AgentCoalescingTest, ThoughtsAndMessagesAreSeparateEventsInTheAgentsOrder) {
  client_.on_line(chunk("agent_thought_chunk", "hmm, "), 100);
  client_.on_line(chunk("agent_thought_chunk", "the build"), 101);
  Output switched = client_.on_line(message_chunk("Fixed"), 102);
  const AgentEvent thought = only_event(switched, event_types::thought);
  EXPECT_EQ(thought.data.at("text"), "hmm, the build");
  EXPECT_EQ(thought.data.at("turn"), 1);
  EXPECT_FALSE(thought.data.contains("message_id"));
  Output message = client_.poll(152);
  EXPECT_EQ(only_event(message, event_types::message).data.at("text"), "Fixed");
}

TEST_F(AgentCoalescingTest, TheAgentsMessageIdIsKeptAndANewOneEndsTheMessage) {
  client_.on_line(message_chunk("one", "m-1"), 100);
  Output out = client_.on_line(message_chunk("two", "m-2"), 101);
  const AgentEvent first = only_event(out, event_types::message);
  EXPECT_EQ(first.data.at("message_id"), "m-1");
  EXPECT_EQ(first.data.at("text"), "one");
  EXPECT_EQ(only_event(client_.poll(151), event_types::message).data.at("message_id"), "m-2");
}

TEST_F(AgentCoalescingTest, NonTextContentIsNotLoggedAsText) {
  Output out = client_.on_line(
      R"({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":
         {"sessionUpdate":"agent_message_chunk","content":{"type":"image","data":"AA==",
          "mimeType":"image/png"}}}})",
      100);
  EXPECT_TRUE(out.events.empty());
  EXPECT_FALSE(client_.next_flush_ms().has_value());
}

TEST_F(AgentCoalescingTest, TheTurnsMessageTextsConcatenateToWhatTheAgentSent) {
  std::mt19937 random(12345);  // fixed: the same script every run
  const std::vector<std::string> pieces_of = {"a", "bc", " ", "\xC3\xA9", "\xE2\x82\xAC", "xyz\n"};
  std::string sent;
  std::vector<AgentEvent> events;
  std::int64_t now = 100;
  for (int i = 0; i < 400; ++i) {
    const std::string piece = pieces_of[random() % pieces_of.size()];
    sent += piece;
    now += static_cast<std::int64_t>(random() % 30);
    if (auto due = client_.next_flush_ms(); due && *due <= now) {
      for (auto& event : client_.poll(*due).events)
        events.push_back(std::move(event));
    }
    for (auto& event : client_.on_line(message_chunk(piece), now).events)
      events.push_back(std::move(event));
  }
  for (auto& event : client_.on_line(end_turn_line(), now + 1).events)
    events.push_back(std::move(event));

  std::string logged;
  std::size_t message_events = 0;
  for (const auto& event : events) {
    if (event.event_type == event_types::message) {
      logged += std::string(event.data.at("text").as_string());
      ++message_events;
    }
  }
  EXPECT_EQ(logged, sent);
  EXPECT_EQ(events.back().event_type, event_types::turn_ended);
  // About 400 pieces over ~6 s in windows of 50 ms: far fewer events than pieces.
  EXPECT_GT(message_events, 1u);
  EXPECT_LT(message_events, 200u);
}

TEST(AgentSummaryTest, SummariesAreCutAtACharacterBoundary) {
  EXPECT_EQ(summarize("short"), "short");
  const std::string euros = "\xE2\x82\xAC\xE2\x82\xAC";  // two 3-byte characters
  EXPECT_EQ(summarize(euros, 4), "\xE2\x82\xAC...");
  EXPECT_EQ(summarize(euros, 2), "...");
}

}  // namespace
}  // namespace tau::agent
