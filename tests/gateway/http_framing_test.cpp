// Strict HTTP/1.1 framing (RFC 9112), byte for byte over raw sockets: Transfer-Encoding other
// than exactly `chunked`, a missing or repeated Host, and lines ending in a bare LF are refused
// at once and the connection closes (so nothing smuggled after them is answered or stored);
// empty lines before a request are ignored; HEAD answers every GET route without a body; and the
// largest stream cursor means "after everything".
#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <map>
#include <string>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace beast_http = boost::beast::http;
namespace json = boost::json;

constexpr char kMaxCursor[] = "18446744073709551615";

struct Answer {
  unsigned status = 0;
  unsigned version = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& name) const {
    const auto found = headers.find(name);
    return found == headers.end() ? "" : found->second;
  }
  std::string error_code() const {
    return std::string(json::parse(body).at("error").at("code").as_string());
  }
};

struct Answers {
  std::vector<Answer> answers;
  std::string rest;  // bytes after the last whole answer
};

// Splits what the gateway sent into whole responses with Beast's parser. `methods` are those of
// the requests, in order: the answer to a HEAD has no body, whatever its Content-Length says, so
// any body bytes the gateway sent after it would break the next answer (or be left in `rest`).
Answers parse_answers(const std::string& bytes, const std::vector<std::string>& methods) {
  Answers result;
  std::string_view remaining = bytes;
  while (!remaining.empty()) {
    beast_http::response_parser<beast_http::string_body> parser;
    parser.eager(true);
    parser.body_limit(boost::none);
    const std::size_t index = result.answers.size();
    if (index < methods.size() && methods[index] == "HEAD")
      parser.skip(true);
    std::string_view unparsed = remaining;
    boost::beast::error_code ec;
    while (!parser.is_done() && !unparsed.empty()) {
      const std::size_t used =
          parser.put(boost::asio::buffer(unparsed.data(), unparsed.size()), ec);
      unparsed.remove_prefix(used);
      if (ec == beast_http::error::need_more && used > 0) {
        ec = {};
        continue;
      }
      if (ec)
        break;
    }
    if (!parser.is_done())
      break;  // not a whole answer: left in `rest`
    remaining = unparsed;
    Answer answer;
    const auto& message = parser.get();
    answer.status = message.result_int();
    answer.version = message.version();
    for (const auto& field : message) {
      std::string name(field.name_string());
      for (char& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      answer.headers[name] = std::string(field.value());
    }
    answer.body = message.body();
    result.answers.push_back(std::move(answer));
  }
  result.rest = std::string(remaining);
  return result;
}

std::string request(const std::string& method, const std::string& target,
                    const std::string& headers = "", const std::string& body = "") {
  // Bodies are JSON, as the gateway requires; `x` is the Host the test gateways allow.
  const std::string content_type = method == "POST" ? "Content-Type: application/json\r\n" : "";
  return method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + content_type + headers + "\r\n" +
         body;
}

const std::string kLastHealthz = request("GET", "/healthz", "Connection: close\r\n");

class HttpFramingTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // However the request was refused, the gateway still serves.
    EXPECT_EQ(client.get("/healthz").status, 200u) << "the gateway stopped serving";
  }

  std::size_t sessions_of(const std::string& workspace_id) {
    const auto response = client.get(kSessions + "?workspace_id=" + workspace_id);
    EXPECT_EQ(response.status, 200u) << response.body;
    return response.json().at("sessions").as_array().size();
  }

  // An open-session request whose body is itself a whole request, which opens a session in the
  // workspace "smuggled" if the gateway ever reads the body as the next request.
  static std::string smuggling_request(const std::string& transfer_encoding,
                                       const std::string& extra_headers = "") {
    const std::string smuggled_body = json_body({{"workspace_id", "smuggled"}});
    const std::string smuggled =
        request("POST", kSessions,
                "Content-Length: " + std::to_string(smuggled_body.size()) + "\r\n", smuggled_body);
    return request("POST", kSessions,
                   "Transfer-Encoding: " + transfer_encoding + "\r\n" + extra_headers, smuggled);
  }

  GatewayProcess gateway;
  HttpClient client{gateway.port()};
};

TEST_F(HttpFramingTest, TransferCodingsOtherThanChunkedAreRefusedAndNothingSmuggledIsServed) {
  struct Case {
    std::string transfer_encoding;
    std::string extra_headers;
    unsigned status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"identity", "", 501, "unsupported_transfer_coding"},
      {"foo", "", 501, "unsupported_transfer_coding"},
      {"gzip, chunked", "", 501, "unsupported_transfer_coding"},
      {"chunked, identity", "", 400, "malformed_request"},
      {"chunked, chunked", "", 400, "malformed_request"},
      {"chunked;ext=1", "", 400, "malformed_request"},
      // Beast would frame this one by its Content-Length; the Transfer-Encoding is refused first.
      {"identity", "Content-Length: 0\r\n", 501, "unsupported_transfer_coding"},
      // Two lines, the last one chunked: the codings are identity then chunked.
      {"identity", "Transfer-Encoding: chunked\r\n", 501, "unsupported_transfer_coding"},
  };
  for (const Case& test_case : cases) {
    const std::string what =
        "Transfer-Encoding: " + test_case.transfer_encoding + " + " + test_case.extra_headers;
    // A second, ordinary request follows on the connection: it is not answered either.
    const std::string bytes =
        smuggling_request(test_case.transfer_encoding, test_case.extra_headers) + kLastHealthz;
    const Answers answers =
        parse_answers(raw_exchange(gateway.port(), bytes), {"POST", "POST", "GET"});
    ASSERT_EQ(answers.answers.size(), 1u) << what << "; left: " << answers.rest;
    const Answer& answer = answers.answers[0];
    EXPECT_EQ(answer.status, test_case.status) << what << ": " << answer.body;
    EXPECT_EQ(answer.error_code(), test_case.code) << what;
    EXPECT_EQ(answer.header("connection"), "close") << what;
    EXPECT_TRUE(answers.rest.empty()) << what << ": " << answers.rest;
  }
  EXPECT_EQ(sessions_of("smuggled"), 0u) << "a smuggled request was served";
}

TEST_F(HttpFramingTest, ChunkedAloneIsAcceptedInAnyCase) {
  for (const std::string coding : {"chunked", "Chunked", "CHUNKED"}) {
    const std::string body = json_body({{"workspace_id", "chunked-" + coding}});
    char size[32];
    std::snprintf(size, sizeof size, "%zx", body.size());
    const std::string bytes = request("POST", kSessions, "Transfer-Encoding: " + coding + "\r\n",
                                      std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n") +
                              kLastHealthz;
    const Answers answers = parse_answers(raw_exchange(gateway.port(), bytes), {"POST", "GET"});
    ASSERT_EQ(answers.answers.size(), 2u) << coding << "; left: " << answers.rest;
    EXPECT_EQ(answers.answers[0].status, 200u) << answers.answers[0].body;
    EXPECT_EQ(answers.answers[1].status, 200u);
    EXPECT_EQ(sessions_of("chunked-" + coding), 1u) << coding;
  }
}

TEST_F(HttpFramingTest, Http10WithATransferEncodingIsAnsweredThenClosed) {
  const std::string body = json_body({{"workspace_id", "http10-chunked"}});
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size());
  const std::string bytes =
      "POST " + kSessions +
      " HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      size + "\r\n" + body + "\r\n0\r\n\r\nGET /healthz HTTP/1.0\r\nHost: x\r\n\r\n";
  const Answers answers = parse_answers(raw_exchange(gateway.port(), bytes), {"POST", "GET"});
  ASSERT_EQ(answers.answers.size(), 1u) << answers.rest;
  EXPECT_EQ(answers.answers[0].status, 200u) << answers.answers[0].body;
  // In HTTP/1.0 an answer without `Connection: keep-alive` ends its connection.
  EXPECT_EQ(answers.answers[0].version, 10u);
  EXPECT_EQ(answers.answers[0].header("connection"), "");
}

TEST_F(HttpFramingTest, Http11NeedsExactlyOneValidHost) {
  const std::string health = "GET /healthz HTTP/1.1\r\n";
  struct Case {
    std::string what;
    std::string bytes;
  };
  const std::vector<Case> refused = {
      {"no Host", health + "\r\n"},
      {"two Hosts", health + "Host: a\r\nHost: b\r\n\r\n"},
      {"two identical Hosts", health + "Host: a\r\nHost: a\r\n\r\n"},
      {"two Hosts in HTTP/1.0", "GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"Host with a space", health + "Host: a b\r\n\r\n"},
      {"Host with userinfo", health + "Host: user@a\r\n\r\n"},
      {"Host with a bad port", health + "Host: a:http\r\n\r\n"},
  };
  for (const Case& test_case : refused) {
    const Answers answers =
        parse_answers(raw_exchange(gateway.port(), test_case.bytes + kLastHealthz), {"GET", "GET"});
    ASSERT_EQ(answers.answers.size(), 1u) << test_case.what << "; left: " << answers.rest;
    EXPECT_EQ(answers.answers[0].status, 400u) << test_case.what;
    EXPECT_EQ(answers.answers[0].error_code(), "malformed_request") << test_case.what;
    if (answers.answers[0].version == 11) {
      EXPECT_EQ(answers.answers[0].header("connection"), "close") << test_case.what;
    }
  }
  // Well framed, these reach the gateway, which answers only Hosts it allows (the loopback names
  // with the port it listens on, and `x` in these tests): the others get 421, not 400.
  const std::string port = std::to_string(gateway.port());
  const std::vector<std::pair<Case, unsigned>> framed = {
      {{"HTTP/1.0 without Host", "GET /healthz HTTP/1.0\r\n\r\n"}, 421},
      {{"host and port", health + "Host: 127.0.0.1:" + port + "\r\nConnection: close\r\n\r\n"},
       200},
      {{"IPv6 literal", health + "Host: [::1]:" + port + "\r\nConnection: close\r\n\r\n"}, 200},
      {{"name", health + "Host: localhost:" + port + "\r\nConnection: close\r\n\r\n"}, 200},
      {{"another port", health + "Host: 127.0.0.1:1\r\nConnection: close\r\n\r\n"}, 421},
      {{"empty (RFC 9112 section 3.2)", health + "Host:\r\nConnection: close\r\n\r\n"}, 421},
  };
  for (const auto& [test_case, status] : framed) {
    const Answers answers = parse_answers(raw_exchange(gateway.port(), test_case.bytes), {"GET"});
    ASSERT_EQ(answers.answers.size(), 1u) << test_case.what << "; left: " << answers.rest;
    EXPECT_EQ(answers.answers[0].status, status) << test_case.what;
    if (status == 421) {
      EXPECT_EQ(answers.answers[0].error_code(), "host_not_allowed") << test_case.what;
    }
  }
}

TEST_F(HttpFramingTest, LinesEndingInABareLfAreRefusedAtOnce) {
  // Beast looks for CRLF and would wait for one until the body timeout (30 s by default; the
  // read here gives up after 5 s of silence, so a wait shows as no answer at all).
  const std::string body = json_body({{"workspace_id", "bare-lf"}});
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size());
  const std::string chunked_header = "Transfer-Encoding: chunked\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"every chunk line",
       request("POST", kSessions, chunked_header, std::string(size) + "\n" + body + "\n0\n\n")},
      {"the last chunk",
       request("POST", kSessions, chunked_header, std::string(size) + "\r\n" + body + "\r\n0\n\n")},
      {"the trailer", request("POST", kSessions, chunked_header,
                              std::string(size) + "\r\n" + body + "\r\n0\r\nX-Trailer: a\n\n")},
      {"the header", "POST " + kSessions + " HTTP/1.1\nHost: x\nContent-Length: " +
                         std::to_string(body.size()) + "\n\n" + body},
      {"one header line", request("GET", "/healthz", "X-Other: a\n")},
  };
  for (const auto& [what, bytes] : cases) {
    const Answers answers = parse_answers(raw_exchange(gateway.port(), bytes), {"POST"});
    ASSERT_EQ(answers.answers.size(), 1u) << what << "; left: " << answers.rest;
    EXPECT_EQ(answers.answers[0].status, 400u) << what;
    EXPECT_EQ(answers.answers[0].error_code(), "malformed_request") << what;
    EXPECT_EQ(answers.answers[0].header("connection"), "close") << what;
  }
  EXPECT_EQ(sessions_of("bare-lf"), 0u);
}

TEST_F(HttpFramingTest, EmptyLinesBeforeARequestAreIgnored) {
  const std::string body = json_body({{"workspace_id", "after-empty-lines"}});
  const std::string bytes =
      "\r\n\r\n" + request("GET", "/healthz") +
      // Some clients end a body with an extra CRLF.
      request("POST", kSessions, "Content-Length: " + std::to_string(body.size()) + "\r\n", body) +
      "\r\n" + kLastHealthz;
  const Answers answers =
      parse_answers(raw_exchange(gateway.port(), bytes), {"GET", "POST", "GET"});
  ASSERT_EQ(answers.answers.size(), 3u) << answers.rest;
  for (const Answer& answer : answers.answers)
    EXPECT_EQ(answer.status, 200u) << answer.body;
  EXPECT_EQ(sessions_of("after-empty-lines"), 1u);
  // An empty line is CRLF: a lone CR, or anything else, before the request line is not one.
  const Answers bare_cr = parse_answers(raw_exchange(gateway.port(), "\r" + kLastHealthz), {"GET"});
  ASSERT_EQ(bare_cr.answers.size(), 1u);
  EXPECT_EQ(bare_cr.answers[0].status, 400u);
}

TEST_F(HttpFramingTest, HeadAnswersEveryGetRouteWithItsHeaderAndNoBody) {
  const std::string session = open_session(client, "head");
  ASSERT_EQ(client.post(session_path(session, "/progress"), json_body({{"message", "m"}})).status,
            200u);
  const std::vector<std::string> targets = {
      "/healthz", "/readyz",    "/gateway/status",   session_path(session),
      kSessions,  "/dashboard", "/dashboard/app.js", "/gateway/openapi.json"};
  for (const std::string& target : targets) {
    // HEAD, then GET of the same target, then a last request, all on one connection: any body
    // bytes after the HEAD answer would break the answers after it.
    const std::string bytes = request("HEAD", target) + request("GET", target) + kLastHealthz;
    const Answers answers =
        parse_answers(raw_exchange(gateway.port(), bytes), {"HEAD", "GET", "GET"});
    ASSERT_EQ(answers.answers.size(), 3u) << target << "; left: " << answers.rest;
    const Answer& head = answers.answers[0];
    const Answer& get = answers.answers[1];
    EXPECT_EQ(head.status, 200u) << target;
    EXPECT_EQ(get.status, 200u) << target;
    EXPECT_TRUE(head.body.empty()) << target;
    EXPECT_EQ(head.header("content-type"), get.header("content-type")) << target;
    EXPECT_EQ(head.header("cache-control"), get.header("cache-control")) << target;
    EXPECT_EQ(head.header("connection"), "") << target << ": HEAD keeps the connection";
    ASSERT_FALSE(head.header("content-length").empty()) << target;
    if (target != "/gateway/status") {
      // The status's store figures may move between the two requests; the others may not.
      EXPECT_EQ(std::stoul(head.header("content-length")), get.body.size()) << target;
    } else {
      EXPECT_GT(std::stoul(head.header("content-length")), 0u);
    }
    EXPECT_EQ(answers.answers[2].status, 200u) << target;
    EXPECT_TRUE(answers.rest.empty()) << target << ": " << answers.rest;
  }
}

TEST_F(HttpFramingTest, HeadOnTheStreamAnswersItsHeaderWithoutStreaming) {
  const std::string session = open_session(client, "head-stream");
  ASSERT_EQ(client.post(session_path(session, "/progress"), json_body({{"message", "m"}})).status,
            200u);
  // A replay: the header, and the connection serves the next request.
  const Answers replay =
      parse_answers(raw_exchange(gateway.port(),
                                 request("HEAD", session_path(session, "/stream")) + kLastHealthz),
                    {"HEAD", "GET"});
  ASSERT_EQ(replay.answers.size(), 2u) << replay.rest;
  EXPECT_EQ(replay.answers[0].status, 200u);
  EXPECT_EQ(replay.answers[0].header("content-type"), "text/event-stream");
  EXPECT_EQ(replay.answers[1].status, 200u);
  EXPECT_TRUE(replay.rest.empty()) << replay.rest;

  // A follow: the header only, then the connection closes (as a GET follow's would) at once
  // rather than streaming the session until it ends.
  const Answers follow = parse_answers(
      raw_exchange(gateway.port(), request("HEAD", session_path(session, "/stream?follow=1"))),
      {"HEAD"});
  ASSERT_EQ(follow.answers.size(), 1u) << follow.rest;
  EXPECT_EQ(follow.answers[0].status, 200u);
  EXPECT_EQ(follow.answers[0].header("content-type"), "text/event-stream");
  EXPECT_EQ(follow.answers[0].header("connection"), "close");
  EXPECT_TRUE(follow.rest.empty()) << follow.rest;

  // An unknown session is 404, without a body.
  const Answers unknown = parse_answers(
      raw_exchange(gateway.port(),
                   request("HEAD", session_path("eca_unknown", "/stream")) + kLastHealthz),
      {"HEAD", "GET"});
  ASSERT_EQ(unknown.answers.size(), 2u) << unknown.rest;
  EXPECT_EQ(unknown.answers[0].status, 404u);
  EXPECT_TRUE(unknown.answers[0].body.empty());
}

TEST_F(HttpFramingTest, HeadWhereGetIsNotAllowedIs405WithoutABody) {
  const std::string session = open_session(client, "head-405");
  const Answers answers =
      parse_answers(raw_exchange(gateway.port(), request("HEAD", session_path(session, "/close")) +
                                                     request("HEAD", "/nope") + kLastHealthz),
                    {"HEAD", "HEAD", "GET"});
  ASSERT_EQ(answers.answers.size(), 3u) << answers.rest;
  EXPECT_EQ(answers.answers[0].status, 405u);
  EXPECT_EQ(answers.answers[0].header("allow"), "POST");
  EXPECT_NE(answers.answers[0].header("content-length"), "0");
  EXPECT_EQ(answers.answers[1].status, 404u);
  EXPECT_EQ(answers.answers[2].status, 200u);
  // And Allow names HEAD wherever it names GET.
  const auto post_status = client.post("/gateway/status", "{}");
  EXPECT_EQ(post_status.status, 405u);
  EXPECT_EQ(post_status.header("allow"), "GET, HEAD");
  const auto delete_sessions = client.request("DELETE", kSessions, std::nullopt);
  EXPECT_EQ(delete_sessions.header("allow"), "POST, GET, HEAD");
}

TEST_F(HttpFramingTest, RefusalsOfAHeadHaveNoBodyEvenBeforeItsLineIsParsed) {
  // Found by fuzz_request: Beast had not parsed this request line when the header was refused
  // (here: longer than --max-header-bytes), yet the answer to a HEAD must not have a body.
  const std::string long_line =
      "HEAD /healthz?" + std::string(20000, 'q') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  const Answers too_large = parse_answers(raw_exchange(gateway.port(), long_line), {"HEAD"});
  ASSERT_EQ(too_large.answers.size(), 1u) << too_large.rest;
  EXPECT_EQ(too_large.answers[0].status, 431u);
  EXPECT_TRUE(too_large.rest.empty()) << too_large.rest;
  // And once it was parsed: a bare LF in a header line, and a refused Transfer-Encoding.
  for (const std::string& bytes :
       {std::string("HEAD /healthz HTTP/1.1\r\nHost: x\nX: y\n\n"),
        request("HEAD", "/healthz", "Transfer-Encoding: identity\r\n")}) {
    const Answers answers = parse_answers(raw_exchange(gateway.port(), bytes), {"HEAD"});
    ASSERT_EQ(answers.answers.size(), 1u) << answers.rest;
    EXPECT_GE(answers.answers[0].status, 400u);
    EXPECT_TRUE(answers.rest.empty()) << answers.rest;
  }
}

TEST_F(HttpFramingTest, TheLargestCursorReplaysNothingAndSignalsNoGap) {
  const std::string session = open_session(client, "max-cursor");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(client.post(session_path(session, "/progress"), json_body({{"message", "m"}})).status,
              200u);
  }
  for (const std::string parameter : {"after_sequence_id", "last_event_id"}) {
    const auto response =
        client.get(session_path(session, "/stream?" + parameter + "=" + kMaxCursor));
    ASSERT_EQ(response.status, 200u) << parameter << ": " << response.body;
    const auto messages = parse_sse(response.body);
    ASSERT_EQ(messages.size(), 2u) << parameter << ": " << response.body;  // snapshot, done
    EXPECT_EQ(messages[0].event, "external_coding_agent.snapshot");
    EXPECT_EQ(
        json::parse(messages[0].data).at("replay_after_sequence_id").to_number<std::uint64_t>(),
        18446744073709551615u);
    EXPECT_EQ(messages[1].event, "done");
  }
  // The cursor just before it, and one far past the newest event, mean the same.
  for (const std::string cursor : {"18446744073709551614", "100000000000000", "4"}) {
    const auto messages =
        parse_sse(client.get(session_path(session, "/stream?after_sequence_id=" + cursor)).body);
    ASSERT_EQ(messages.size(), 2u) << cursor;
    EXPECT_EQ(messages[1].event, "done") << cursor;
  }
  // While a cursor before the first event still gets everything.
  EXPECT_EQ(replayed_events(client, session, "?after_sequence_id=0").size(), 3u);
}

TEST_F(HttpFramingTest, FollowingFromTheLargestCursorDeliversNothingUntilTheEnd) {
  const std::string session = open_session(client, "max-cursor-follow");
  ASSERT_EQ(client.post(session_path(session, "/progress"), json_body({{"message", "old"}})).status,
            200u);
  SseStream stream(gateway.port(), session_path(session, std::string("/stream?follow=1&") +
                                                             "after_sequence_id=" + kMaxCursor));
  ASSERT_EQ(stream.head().status, 200u);
  const auto opening = stream.next_message();
  ASSERT_TRUE(opening.has_value());
  EXPECT_EQ(opening->event, "external_coding_agent.snapshot");
  // Events appended now come before the cursor: the stream passes over them, and the session's
  // end comes next.
  ASSERT_EQ(client.post(session_path(session, "/progress"), json_body({{"message", "new"}})).status,
            200u);
  ASSERT_EQ(client.post(session_path(session, "/close"), "").status, 200u);
  std::vector<std::string> events;
  while (auto message = stream.next_message())
    events.push_back(message->event);
  EXPECT_EQ(events, (std::vector<std::string>{"external_coding_agent.snapshot", "done"}));
  EXPECT_TRUE(stream.completed());
}

}  // namespace
}  // namespace tau::test
