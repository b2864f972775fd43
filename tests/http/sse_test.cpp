#include "http/sse.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tau::http {
namespace {

// What an EventSource would dispatch for one message.
struct ReceivedEvent {
  std::string type;
  std::string data;
  std::string last_event_id;
};

// What a client makes of a whole stream.
struct ParsedStream {
  std::vector<ReceivedEvent> events;
  std::optional<std::int64_t> reconnection_time_ms;
  int ignored_fields = 0;  // fields with unknown names, or values the spec says to ignore
};

// A client-side parser following the WHATWG HTML "Interpreting an event stream" algorithm:
// lines end at CRLF, LF or CR; a blank line dispatches; ':' starts a comment; one space after
// the field's colon is dropped; data lines are joined with LF and the final LF is removed.
ParsedStream parse_event_stream(std::string_view stream) {
  ParsedStream parsed;
  std::string data_buffer;
  std::string event_type_buffer;
  std::string last_event_id_buffer;

  auto process_field = [&](std::string_view field, std::string_view value) {
    if (field == "event") {
      event_type_buffer = std::string(value);
    } else if (field == "data") {
      data_buffer.append(value);
      data_buffer.push_back('\n');
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos)
        last_event_id_buffer = std::string(value);
      else
        ++parsed.ignored_fields;
    } else if (field == "retry") {
      const bool all_digits =
          !value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos;
      if (all_digits)
        parsed.reconnection_time_ms = std::stoll(std::string(value));
      else
        ++parsed.ignored_fields;
    } else {
      ++parsed.ignored_fields;
    }
  };

  auto dispatch = [&] {
    if (data_buffer.empty()) {
      event_type_buffer.clear();
      return;
    }
    if (data_buffer.back() == '\n')
      data_buffer.pop_back();
    parsed.events.push_back(ReceivedEvent{event_type_buffer.empty() ? "message" : event_type_buffer,
                                          data_buffer, last_event_id_buffer});
    data_buffer.clear();
    event_type_buffer.clear();
  };

  std::size_t position = 0;
  while (position < stream.size()) {
    const std::size_t end = stream.find_first_of("\r\n", position);
    if (end == std::string_view::npos)
      break;  // an unterminated last line is never processed
    const std::string_view line = stream.substr(position, end - position);
    position = end + 1;
    if (stream[end] == '\r' && position < stream.size() && stream[position] == '\n')
      ++position;

    if (line.empty()) {
      dispatch();
    } else if (line.front() == ':') {
      // comment
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      process_field(line.substr(0, colon), value);
    } else {
      process_field(line, "");
    }
  }
  return parsed;
}

SseFrame data_frame(std::string data) {
  SseFrame frame;
  frame.data = std::move(data);
  return frame;
}

// --- exact output -----------------------------------------------------------------------------

TEST(SerializeSseTest, DataOnlyFrame) {
  EXPECT_EQ(serialize_sse(data_frame("hello")), "data: hello\n\n");
}

TEST(SerializeSseTest, EmptyDataFrameStillHasOneDataLine) {
  EXPECT_EQ(serialize_sse(data_frame("")), "data: \n\n");
}

TEST(SerializeSseTest, AllFields) {
  SseFrame frame;
  frame.id = "42";
  frame.event = "progress";
  frame.data = "{\"sequence_id\":42}";
  frame.retry_ms = 3000;

  EXPECT_EQ(serialize_sse(frame),
            "retry: 3000\n"
            "id: 42\n"
            "event: progress\n"
            "data: {\"sequence_id\":42}\n"
            "\n");
}

TEST(SerializeSseTest, EmptyIdIsWrittenSoItCanResetTheLastEventId) {
  SseFrame frame = data_frame("x");
  frame.id = "";

  EXPECT_EQ(serialize_sse(frame), "id: \ndata: x\n\n");
}

TEST(SerializeSseTest, EachLineBreakInDataStartsANewDataLine) {
  EXPECT_EQ(serialize_sse(data_frame("a\nb")), "data: a\ndata: b\n\n");
  EXPECT_EQ(serialize_sse(data_frame("a\r\nb")), "data: a\ndata: b\n\n");
  EXPECT_EQ(serialize_sse(data_frame("a\rb")), "data: a\ndata: b\n\n");
  EXPECT_EQ(serialize_sse(data_frame("a\n")), "data: a\ndata: \n\n");
  EXPECT_EQ(serialize_sse(data_frame("\n")), "data: \ndata: \n\n");
  EXPECT_EQ(serialize_sse(data_frame("a\n\nb")), "data: a\ndata: \ndata: b\n\n");
  // LF then CR is two line breaks, not one.
  EXPECT_EQ(serialize_sse(data_frame("a\n\rb")), "data: a\ndata: \ndata: b\n\n");
  EXPECT_EQ(serialize_sse(data_frame("a\r\r\nb")), "data: a\ndata: \ndata: b\n\n");
}

TEST(SerializeSseTest, LeadingSpaceInDataSurvivesTheClientsSpaceStripping) {
  EXPECT_EQ(serialize_sse(data_frame(" indented")), "data:  indented\n\n");
}

TEST(SerializeSseTest, LineBreaksInIdAndEventBecomeSpaces) {
  SseFrame frame;
  frame.id = "7\ndata: injected\r\nevent: evil\rretry: 1";
  frame.event = "progress\n\ndata: injected";
  frame.data = "real";

  EXPECT_EQ(serialize_sse(frame),
            "id: 7 data: injected  event: evil retry: 1\n"
            "event: progress  data: injected\n"
            "data: real\n"
            "\n");
}

TEST(SerializeSseTest, NulInIdIsReplacedSoTheClientDoesNotDropTheId) {
  SseFrame frame = data_frame("x");
  frame.id = std::string("1\0002", 3);

  const std::string wire = serialize_sse(frame);

  EXPECT_EQ(wire, "id: 1 2\ndata: x\n\n");
  const ParsedStream parsed = parse_event_stream(wire);
  ASSERT_EQ(parsed.events.size(), 1u);
  EXPECT_EQ(parsed.events[0].last_event_id, "1 2");
  EXPECT_EQ(parsed.ignored_fields, 0);
}

TEST(SerializeSseCommentTest, ExactOutput) {
  EXPECT_EQ(serialize_sse_comment("keep-alive"), ": keep-alive\n\n");
  EXPECT_EQ(serialize_sse_comment(""), ": \n\n");
}

TEST(SerializeSseCommentTest, LineBreaksCannotEndTheComment) {
  const std::string wire = serialize_sse_comment("ping\ndata: injected\r\n\revent: x");

  EXPECT_EQ(wire, ": ping data: injected   event: x\n\n");
  const ParsedStream parsed = parse_event_stream(wire);
  EXPECT_TRUE(parsed.events.empty());
  EXPECT_EQ(parsed.ignored_fields, 0);
}

// --- what a client receives -------------------------------------------------------------------

TEST(SseRoundTripTest, ClientParserSanityCheck) {
  // The parser above against a stream written by hand, to trust it in the tests below.
  const ParsedStream parsed = parse_event_stream(
      ": comment\r\n"
      "retry: 1500\r"
      "id: 1\n"
      "event: a\n"
      "data:x\n"
      "data:  y\n"
      "\n"
      "data\n"
      "\n"
      "event: only-type\n"
      "\n"
      "data: unterminated");

  EXPECT_EQ(parsed.reconnection_time_ms, 1500);
  ASSERT_EQ(parsed.events.size(), 2u);
  EXPECT_EQ(parsed.events[0].type, "a");
  EXPECT_EQ(parsed.events[0].data, "x\n y");
  EXPECT_EQ(parsed.events[0].last_event_id, "1");
  EXPECT_EQ(parsed.events[1].type, "message");
  EXPECT_EQ(parsed.events[1].data, "");
  EXPECT_EQ(parsed.events[1].last_event_id, "1");
}

TEST(SseRoundTripTest, DataComesBackWithLineBreaksNormalizedToLf) {
  struct Case {
    std::string sent;
    std::string received;
  };
  const std::vector<Case> cases{
      {"", ""},
      {"plain", "plain"},
      {" leading and trailing spaces ", " leading and trailing spaces "},
      {"a\nb", "a\nb"},
      {"a\r\nb", "a\nb"},
      {"a\rb", "a\nb"},
      {"trailing\n", "trailing\n"},
      {"trailing crlf\r\n", "trailing crlf\n"},
      {"trailing cr\r", "trailing cr\n"},
      {"\n", "\n"},
      {"\r\n", "\n"},
      {"\r", "\n"},
      {"\n\n", "\n\n"},
      {"\r\r", "\n\n"},
      {"\n\r", "\n\n"},
      {"\r\n\r\n", "\n\n"},
      {"\nleading", "\nleading"},
      {"a\n\nb", "a\n\nb"},
      {"mixed\r\nline\rbreaks\nhere\r\n", "mixed\nline\nbreaks\nhere\n"},
      {"data: nested", "data: nested"},
      {": not a comment", ": not a comment"},
      {"x\n: not a comment\nid: not an id\nevent: not an event\n",
       "x\n: not a comment\nid: not an id\nevent: not an event\n"},
      {"\n\n\n", "\n\n\n"},
      {"colon:inside", "colon:inside"},
      {"  ", "  "},
      {"tab\tseparated", "tab\tseparated"},
      {"{\"json\":\"with \\n escape\"}", "{\"json\":\"with \\n escape\"}"},
      {"utf-8: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
       "utf-8: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
  };

  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "data=[" << c.sent << "]");
    SseFrame frame;
    frame.id = "9";
    frame.event = "progress";
    frame.data = c.sent;

    const ParsedStream parsed = parse_event_stream(serialize_sse(frame));

    ASSERT_EQ(parsed.events.size(), 1u);
    EXPECT_EQ(parsed.events[0].data, c.received);
    EXPECT_EQ(parsed.events[0].type, "progress");
    EXPECT_EQ(parsed.events[0].last_event_id, "9");
    EXPECT_EQ(parsed.ignored_fields, 0);
  }
}

TEST(SseRoundTripTest, EveryShortStringOfLineBreaksAndLettersRoundTrips) {
  // All strings up to length 5 over {a, ' ', ':', \r, \n}: each must arrive with CRLF and CR
  // turned into LF and nothing else changed.
  const std::string alphabet = "a :\r\n";
  std::vector<std::string> strings{""};
  std::size_t checked = 0;
  for (int length = 1; length <= 5; ++length) {
    std::vector<std::string> longer;
    for (const std::string& prefix : strings) {
      if (prefix.size() != static_cast<std::size_t>(length - 1))
        continue;
      for (char c : alphabet)
        longer.push_back(prefix + c);
    }
    strings.insert(strings.end(), longer.begin(), longer.end());
  }

  for (const std::string& sent : strings) {
    std::string expected;
    for (std::size_t i = 0; i < sent.size(); ++i) {
      if (sent[i] == '\r') {
        expected.push_back('\n');
        if (i + 1 < sent.size() && sent[i + 1] == '\n')
          ++i;
      } else {
        expected.push_back(sent[i]);
      }
    }
    const ParsedStream parsed = parse_event_stream(serialize_sse(data_frame(sent)));
    ASSERT_EQ(parsed.events.size(), 1u) << "data=[" << sent << "]";
    ASSERT_EQ(parsed.events[0].data, expected) << "data=[" << sent << "]";
    ASSERT_EQ(parsed.events[0].type, "message");
    ++checked;
  }
  EXPECT_EQ(checked, 1u + 5u + 25u + 125u + 625u + 3125u);
}

TEST(SseRoundTripTest, IdAndEventWithLineBreaksStayOneFieldEach) {
  SseFrame frame;
  frame.id = "5\ndata: injected\n\nid: 666";
  frame.event = "progress\r\nretry: 1\revent: other";
  frame.data = "payload";

  const ParsedStream parsed = parse_event_stream(serialize_sse(frame));

  ASSERT_EQ(parsed.events.size(), 1u);
  EXPECT_EQ(parsed.events[0].data, "payload");
  EXPECT_EQ(parsed.events[0].last_event_id, "5 data: injected  id: 666");
  EXPECT_EQ(parsed.events[0].type, "progress  retry: 1 event: other");
  EXPECT_EQ(parsed.reconnection_time_ms, std::nullopt);
  EXPECT_EQ(parsed.ignored_fields, 0);
}

TEST(SseRoundTripTest, ConsecutiveFramesArriveAsSeparateEvents) {
  SseFrame first;
  first.id = "1";
  first.event = "progress";
  first.data = "one\ntwo";
  first.retry_ms = 2000;
  SseFrame second;
  second.id = "2";
  second.event = "followup";
  second.data = "three";
  SseFrame done;
  done.event = "done";
  done.data = "[DONE]";

  const ParsedStream parsed =
      parse_event_stream(serialize_sse(first) + serialize_sse_comment("keep-alive") +
                         serialize_sse(second) + serialize_sse(done));

  EXPECT_EQ(parsed.reconnection_time_ms, 2000);
  ASSERT_EQ(parsed.events.size(), 3u);
  EXPECT_EQ(parsed.events[0].type, "progress");
  EXPECT_EQ(parsed.events[0].data, "one\ntwo");
  EXPECT_EQ(parsed.events[0].last_event_id, "1");
  EXPECT_EQ(parsed.events[1].type, "followup");
  EXPECT_EQ(parsed.events[1].data, "three");
  EXPECT_EQ(parsed.events[1].last_event_id, "2");
  // A frame without an id keeps the previous last event id.
  EXPECT_EQ(parsed.events[2].type, "done");
  EXPECT_EQ(parsed.events[2].data, "[DONE]");
  EXPECT_EQ(parsed.events[2].last_event_id, "2");
}

}  // namespace
}  // namespace tau::http
