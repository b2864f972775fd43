#include "gateway/json_codec.h"

#include "gateway/event_stream.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace tau::gateway {
namespace {

namespace json = boost::json;

json::object object_of(std::string_view text) {
  return json::parse(text).as_object();
}

// Runs `call`, expecting it to throw ApiError 400 malformed_json; returns the message.
template <class Call>
std::string malformed_json_message(Call&& call) {
  try {
    call();
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), 400u);
    EXPECT_EQ(error.code(), "malformed_json");
    return error.what();
  }
  ADD_FAILURE() << "expected ApiError malformed_json";
  return {};
}

// --- error envelope ---------------------------------------------------------------------------

TEST(ErrorEnvelopeTest, ClientErrorsAreInvalidRequestErrors) {
  const json::object envelope = error_envelope(404, "not_found", "no such route");

  EXPECT_EQ(
      json::serialize(envelope),
      R"({"error":{"type":"invalid_request_error","code":"not_found","message":"no such route"}})");
}

TEST(ErrorEnvelopeTest, TypeFollowsTheStatusClass) {
  for (unsigned status : {400u, 401u, 403u, 404u, 405u, 409u, 413u, 429u, 499u}) {
    SCOPED_TRACE(status);
    EXPECT_EQ(error_envelope(status, "c", "m").at("error").at("type"), "invalid_request_error");
  }
  for (unsigned status : {500u, 502u, 503u, 599u}) {
    SCOPED_TRACE(status);
    EXPECT_EQ(error_envelope(status, "c", "m").at("error").at("type"), "server_error");
  }
}

TEST(ErrorEnvelopeTest, HasExactlyTheDocumentedFields) {
  const json::object envelope = error_envelope(503, "unavailable", "try \"later\"\n");

  ASSERT_EQ(envelope.size(), 1u);
  const json::object& error = envelope.at("error").as_object();
  EXPECT_EQ(error.size(), 3u);
  EXPECT_EQ(error.at("code"), "unavailable");
  EXPECT_EQ(error.at("message"), "try \"later\"\n");
  // The message survives serialization as JSON text.
  EXPECT_EQ(json::parse(json::serialize(envelope)).at("error").at("message"), "try \"later\"\n");
}

// --- to_json ----------------------------------------------------------------------------------

TEST(ToJsonTest, SessionSnapshot) {
  core::SessionSnapshot session;
  session.session_id = "eca_1";
  session.workspace_id = "ws-1";
  session.status = core::SessionStatus::timed_out;
  session.started_unix_ms = 1'700'000'000'000;
  session.last_activity_unix_ms = 1'700'000'000'500;
  session.queued_followups = 3;

  const json::object object = to_json(session);

  EXPECT_EQ(object.size(), 6u);
  EXPECT_EQ(object.at("session_id"), "eca_1");
  EXPECT_EQ(object.at("workspace_id"), "ws-1");
  EXPECT_EQ(object.at("status"), "timed_out");
  EXPECT_EQ(object.at("started_unix_ms").to_number<std::int64_t>(), 1'700'000'000'000);
  EXPECT_EQ(object.at("last_activity_unix_ms").to_number<std::int64_t>(), 1'700'000'000'500);
  EXPECT_EQ(object.at("queued_followups").to_number<std::int64_t>(), 3);
}

TEST(ToJsonTest, SessionStatusNames) {
  core::SessionSnapshot session;
  for (const auto& [status, name] : {std::pair{core::SessionStatus::running, "running"},
                                     std::pair{core::SessionStatus::completed, "completed"},
                                     std::pair{core::SessionStatus::failed, "failed"},
                                     std::pair{core::SessionStatus::timed_out, "timed_out"},
                                     std::pair{core::SessionStatus::closed, "closed"}}) {
    session.status = status;
    EXPECT_EQ(to_json(session).at("status"), name);
  }
}

TEST(ToJsonTest, SessionEvent) {
  core::SessionEvent event;
  event.sequence_id = 42;
  event.event_type = "followup";
  event.message = "line 1\nline 2";
  event.timestamp_unix_ms = 1'700'000'000'123;

  const json::object object = to_json(event);

  EXPECT_EQ(object.size(), 4u);
  EXPECT_EQ(object.at("sequence_id").to_number<std::uint64_t>(), 42u);
  EXPECT_EQ(object.at("event_type"), "followup");
  EXPECT_EQ(object.at("message"), "line 1\nline 2");
  EXPECT_EQ(object.at("timestamp_unix_ms").to_number<std::int64_t>(), 1'700'000'000'123);
}

TEST(ToJsonTest, SessionEventWithoutDataHasNoDataKey) {
  core::SessionEvent event{1, "progress", "m", 5};
  EXPECT_FALSE(to_json(event).contains("data"));
  EXPECT_EQ(json::serialize(to_json(event)),
            R"({"sequence_id":1,"event_type":"progress","message":"m","timestamp_unix_ms":5})");
  // And the SSE frame's JSON is the same object.
  EXPECT_EQ(encode_event_frame(event).find("\"data\""), std::string::npos);
}

TEST(ToJsonTest, SessionEventWithDataRendersItAsAnObject) {
  core::SessionEvent event{7, "agent.tool_call", "edited a.cpp", 5,
                           R"({"tool":"edit","path":"a.cpp","lines":[1,2],"nested":{"ok":true}})"};
  const json::object object = to_json(event);
  EXPECT_EQ(object.size(), 5u);
  EXPECT_EQ(object.at("message"), "edited a.cpp");
  ASSERT_TRUE(object.at("data").is_object());
  EXPECT_EQ(object.at("data"), json::parse(event.data));
  // The SSE frame carries the same event object, data included.
  const std::string frame = encode_event_frame(event);
  const auto line = frame.find("data: ");
  ASSERT_NE(line, std::string::npos) << frame;
  const std::string payload = frame.substr(line + 6, frame.find('\n', line) - line - 6);
  EXPECT_EQ(json::parse(payload), json::value(object));
}

TEST(ToJsonTest, SessionEventDataThatIsNotAnObjectRendersAsRawText) {
  for (const std::string data : {"not json", "[1,2]", "\"text\"", "{\"cut\":"}) {
    core::SessionEvent event{1, "agent.message", "m", 5, data};
    const json::object object = to_json(event);
    ASSERT_TRUE(object.at("data").is_object()) << data;
    EXPECT_EQ(object.at("data"), (json::object{{"raw_text", data}})) << data;
  }
}

// --- append_session_json, append_json_string: the bytes Boost.JSON writes -----------------------

// What the API answered before the session was rendered directly: to_json with the agent.
std::string serialized_session(const core::SessionSnapshot& session, const json::value& agent) {
  json::object object = to_json(session);
  object["agent"] = agent;
  return json::serialize(object);
}

std::string appended_session(const core::SessionSnapshot& session, const json::value& agent) {
  std::string out = "prefix:";
  append_session_json(out, session, agent);
  EXPECT_EQ(out.substr(0, 7), "prefix:");
  return out.substr(7);
}

TEST(AppendSessionJsonTest, WritesTheBytesOfTheObjectWithItsAgent) {
  const json::value agents[] = {
      nullptr,
      json::parse(R"({"state":"ready","pending_permissions":2,"name":"opencode \"x\"\n"})"),
  };
  for (const auto status :
       {core::SessionStatus::running, core::SessionStatus::completed, core::SessionStatus::failed,
        core::SessionStatus::timed_out, core::SessionStatus::closed}) {
    for (const auto& agent : agents) {
      core::SessionSnapshot session{
          "s-0123456789abcdef0123", "workspace one", status, 1700000000000, 1700000012345, 3};
      EXPECT_EQ(appended_session(session, agent), serialized_session(session, agent));
    }
  }
}

TEST(AppendSessionJsonTest, WritesExtremeNumbersAndEscapedTextAsBoostJsonDoes) {
  core::SessionSnapshot session{"s\"1\\",
                                "w\x01\t\n\x7f/é\xff",
                                core::SessionStatus::running,
                                std::numeric_limits<std::int64_t>::min(),
                                std::numeric_limits<std::int64_t>::max(),
                                std::numeric_limits<std::size_t>::max()};
  EXPECT_EQ(appended_session(session, nullptr), serialized_session(session, nullptr));
  session = core::SessionSnapshot{"", "", core::SessionStatus::closed, 0, -1, 0};
  EXPECT_EQ(appended_session(session, nullptr), serialized_session(session, nullptr));
}

TEST(AppendJsonStringTest, EscapesEveryByteAsBoostJsonDoes) {
  for (int byte = 0; byte < 256; ++byte) {
    const std::string text = "a" + std::string(1, static_cast<char>(byte)) + "b";
    std::string out;
    append_json_string(out, text);
    EXPECT_EQ(out, json::serialize(json::string_view(text))) << "byte " << byte;
  }
  std::string out = "x";
  append_json_string(out, "");
  EXPECT_EQ(out, "x\"\"");
}

TEST(ToJsonTest, RuntimeInfo) {
  bridge::RuntimeInfo runtime;
  runtime.active_sessions = 2;
  runtime.inactivity_timeout_ms = 600000;
  runtime.max_active_sessions = 16;
  runtime.max_events_per_session = 256;

  const json::object object = to_json(runtime);

  EXPECT_EQ(object.size(), 4u);
  EXPECT_EQ(object.at("active_sessions").to_number<std::int64_t>(), 2);
  EXPECT_EQ(object.at("inactivity_timeout_ms").to_number<std::int64_t>(), 600000);
  EXPECT_EQ(object.at("max_active_sessions").to_number<std::int64_t>(), 16);
  EXPECT_EQ(object.at("max_events_per_session").to_number<std::int64_t>(), 256);
}

// --- parse_json_object ------------------------------------------------------------------------

TEST(ParseJsonObjectTest, ParsesAnObject) {
  const json::object body = parse_json_object(R"( {"workspace_id":"ws-1","n":2} )", false);

  EXPECT_EQ(body.size(), 2u);
  EXPECT_EQ(body.at("workspace_id"), "ws-1");
  EXPECT_EQ(body.at("n").as_int64(), 2);
}

TEST(ParseJsonObjectTest, EmptyBodyIsAnEmptyObjectWhenOptional) {
  EXPECT_TRUE(parse_json_object("", true).empty());
  EXPECT_TRUE(parse_json_object(" \r\n\t", true).empty());
  EXPECT_TRUE(parse_json_object("{}", true).empty());
}

TEST(ParseJsonObjectTest, EmptyBodyIsMalformedWhenRequired) {
  malformed_json_message([] { parse_json_object("", false); });
  malformed_json_message([] { parse_json_object("  \n", false); });
}

TEST(ParseJsonObjectTest, InvalidJsonIsMalformed) {
  for (const char* body : {"{", "{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":1,}", "{} {}", "{}x", "nul",
                           "\"unterminated"}) {
    SCOPED_TRACE(body);
    for (bool optional : {false, true}) {
      const std::string message =
          malformed_json_message([&] { parse_json_object(body, optional); });
      EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
    }
  }
}

TEST(ParseJsonObjectTest, NonObjectJsonIsMalformed) {
  for (const char* body : {"[]", "[{\"a\":1}]", "\"text\"", "null", "42", "true", "1.5"}) {
    SCOPED_TRACE(body);
    for (bool optional : {false, true}) {
      const std::string message =
          malformed_json_message([&] { parse_json_object(body, optional); });
      EXPECT_NE(message.find("must be a JSON object"), std::string::npos) << message;
    }
  }
}

// --- required_string --------------------------------------------------------------------------

TEST(RequiredStringTest, ReturnsTheString) {
  const json::object body = object_of(R"({"workspace_id":"ws-1","empty":""})");

  EXPECT_EQ(required_string(body, "workspace_id"), "ws-1");
  EXPECT_EQ(required_string(body, "empty"), "");
}

TEST(RequiredStringTest, MissingFieldIsMalformedAndNamed) {
  const json::object body = object_of(R"({"other":"x"})");

  const std::string message =
      malformed_json_message([&] { required_string(body, "workspace_id"); });

  EXPECT_NE(message.find("'workspace_id'"), std::string::npos) << message;
  EXPECT_NE(message.find("required"), std::string::npos) << message;
}

TEST(RequiredStringTest, NonStringFieldIsMalformedAndNamed) {
  for (const char* text : {R"({"message":1})", R"({"message":null})", R"({"message":["x"]})",
                           R"({"message":{"x":"y"}})", R"({"message":true})"}) {
    SCOPED_TRACE(text);
    const json::object body = object_of(text);
    const std::string message = malformed_json_message([&] { required_string(body, "message"); });
    EXPECT_NE(message.find("'message'"), std::string::npos) << message;
    EXPECT_NE(message.find("must be a string"), std::string::npos) << message;
  }
}

// --- optional_integer -------------------------------------------------------------------------

TEST(OptionalIntegerTest, AbsentFieldIsNullopt) {
  EXPECT_EQ(optional_integer(object_of(R"({"other":5})"), "limit", 1, 1000), std::nullopt);
}

TEST(OptionalIntegerTest, AcceptsIntegersWithinTheBoundsInclusive) {
  EXPECT_EQ(optional_integer(object_of(R"({"limit":1})"), "limit", 1, 1000), 1);
  EXPECT_EQ(optional_integer(object_of(R"({"limit":500})"), "limit", 1, 1000), 500);
  EXPECT_EQ(optional_integer(object_of(R"({"limit":1000})"), "limit", 1, 1000), 1000);
  EXPECT_EQ(optional_integer(object_of(R"({"n":0})"), "n", 0, 0), 0);
  EXPECT_EQ(optional_integer(object_of(R"({"n":-3})"), "n", -5, 5), -3);
}

TEST(OptionalIntegerTest, AcceptsTheFullInt64RangeWhenAllowed) {
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();

  EXPECT_EQ(optional_integer(object_of(R"({"n":9223372036854775807})"), "n", 1, kMax), kMax);
  EXPECT_EQ(optional_integer(object_of(R"({"n":-9223372036854775808})"), "n", kMin, kMax), kMin);
}

TEST(OptionalIntegerTest, RefusesEverythingElseNamingTheFieldAndRange) {
  for (const char* text : {
           R"({"limit":0})",                     // below min
           R"({"limit":-1})",                    // negative
           R"({"limit":1001})",                  // above max
           R"({"limit":1.0})",                   // whole float
           R"({"limit":1.5})",                   // float
           R"({"limit":1e2})",                   // exponent form is a float
           R"({"limit":-0.0})",                  // negative zero
           R"({"limit":"5"})",                   // string
           R"({"limit":true})",                  // bool
           R"({"limit":null})",                  // null
           R"({"limit":[5]})",                   // array
           R"({"limit":{"value":5}})",           // object
           R"({"limit":9223372036854775808})",   // 2^63, above int64
           R"({"limit":18446744073709551615})",  // 2^64 - 1
           R"({"limit":18446744073709551616})",  // 2^64
           R"({"limit":1e400})",                 // parses as infinity
           // Found by fuzz/fuzz_json_body (corpus: huge-numbers-nan): Boost.JSON 1.81 parses
           // zero with a huge exponent as NaN, which must be refused like any float.
           R"({"limit":0e400})",
           R"({"limit":-0e3844})",
       }) {
    SCOPED_TRACE(text);
    const json::object body = object_of(text);
    const std::string message =
        malformed_json_message([&] { optional_integer(body, "limit", 1, 1000); });
    EXPECT_NE(message.find("'limit'"), std::string::npos) << message;
    EXPECT_NE(message.find("from 1 to 1000"), std::string::npos) << message;
  }
}

TEST(OptionalIntegerTest, Refuses2To64EvenWithTheWidestBounds) {
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();

  malformed_json_message(
      [&] { optional_integer(object_of(R"({"n":18446744073709551616})"), "n", kMin, kMax); });
  malformed_json_message(
      [&] { optional_integer(object_of(R"({"n":9223372036854775808})"), "n", kMin, kMax); });
  malformed_json_message([&] { optional_integer(object_of(R"({"n":1.0})"), "n", kMin, kMax); });
}

}  // namespace
}  // namespace tau::gateway
