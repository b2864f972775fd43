// The bad-input matrix: hostile or broken requests each get the right 4xx in the error envelope
// (or, where HTTP leaves no way to answer, a closed connection), and the gateway keeps serving.
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/json.hpp>
#include <string>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;

// One whole answer parsed from raw bytes (Content-Length bodies only).
struct RawAnswer {
  unsigned status = 0;
  std::string version;
  std::string head;
  std::string body;
  std::string rest;  // bytes after this answer (a pipelined second one)
};

RawAnswer parse_answer(const std::string& bytes) {
  RawAnswer answer;
  const auto head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string::npos)
    return answer;
  answer.head = bytes.substr(0, head_end);
  answer.version = bytes.substr(0, 8);
  answer.status = static_cast<unsigned>(std::stoul(bytes.substr(9, 3)));
  std::size_t length = 0;
  if (const auto at = answer.head.find("Content-Length: "); at != std::string::npos)
    length = std::stoul(answer.head.substr(at + 16));
  answer.body = bytes.substr(head_end + 4, length);
  answer.rest = bytes.substr(std::min(bytes.size(), head_end + 4 + length));
  return answer;
}

std::string error_code_of(const RawAnswer& answer) {
  return std::string(json::parse(answer.body).at("error").at("code").as_string());
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override { session = open_session(client, "bad-input"); }
  void TearDown() override {
    // However the request was refused, the gateway still serves, and the session is intact.
    EXPECT_EQ(client.get(session_path(session)).status, 200u) << "the gateway stopped serving";
  }

  void expect_error(const HttpResponse& response, unsigned status, const std::string& code,
                    const std::string& what) {
    EXPECT_EQ(response.status, status) << what << ": " << response.body;
    EXPECT_EQ(response.error_code(), code) << what;
  }
  void expect_raw_error(const std::string& request, unsigned status, const std::string& code,
                        const std::string& what) {
    const RawAnswer answer = parse_answer(raw_exchange(gateway.port(), request));
    EXPECT_EQ(answer.status, status) << what << ":\n" << answer.head;
    if (answer.status == status) {
      EXPECT_EQ(error_code_of(answer), code) << what;
    }
  }
  std::string post_raw(const std::string& path, const std::string& headers,
                       const std::string& body) {
    return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + headers +
           "\r\n" + body;
  }

  // max-input-chars 1000: bodies over 8000 bytes are refused.
  GatewayProcess gateway{{"--auth-mode", "localhost-dev", "--max-input-chars", "1000"}};
  HttpClient client{gateway.port()};
  std::string session;
};

TEST_F(BadInputTest, BodiesThatAreNotTheExpectedJsonObject) {
  const std::string progress = session_path(session, "/progress");
  for (const std::string body : {"hello", "{\"message\":\"a\"", "[]", "\"message\"", "null", "",
                                 "{\"message\":1}", "{\"message\":null}", "{} {}"}) {
    expect_error(client.post(progress, body), 400, "malformed_json", "body " + body);
  }
  expect_error(client.post(kSessions, "{\"workspace_id\":[\"a\"]}"), 400, "malformed_json",
               "array workspace id");
}

TEST_F(BadInputTest, NumbersOutOfRange) {
  const std::string drain = session_path(session, "/followups/drain");
  for (const std::string limit :
       {"-1", "0", "18446744073709551616", "1.5", "1e3", "\"5\"", "1000001", "true"}) {
    expect_error(client.post(drain, "{\"limit\":" + limit + "}"), 400, "malformed_json",
                 "drain limit " + limit);
  }
  for (const std::string limit : {"-1", "0", "18446744073709551616", "1.5", "abc"}) {
    expect_error(client.get(session_path(session, "/stream?limit=" + limit)), 400, "invalid_limit",
                 "stream limit " + limit);
    expect_error(client.get(kSessions + "?limit=" + limit), 400, "invalid_limit",
                 "list limit " + limit);
  }
  for (const std::string cursor : {"-1", "18446744073709551616", "1.0", "0x10", "%201", "1%00"}) {
    expect_error(client.get(session_path(session, "/stream?after_sequence_id=" + cursor)), 400,
                 "invalid_cursor", "cursor " + cursor);
  }
  expect_error(client.post("/gateway/external-coding-agent/reap", "{\"now_unix_ms\":-5}"), 400,
               "malformed_json", "negative reap time");
}

TEST_F(BadInputTest, InvalidUtf8AndRawControlBytesInJsonAreRefused) {
  const std::string progress = session_path(session, "/progress");
  expect_error(client.post(progress, "{\"message\":\"\xff\xfe\"}"), 400, "malformed_json",
               "invalid UTF-8");
  expect_error(client.post(progress, "{\"message\":\"\xc0\xaf\"}"), 400, "malformed_json",
               "overlong UTF-8");
  expect_error(client.post(progress, std::string("{\"message\":\"a\0b\"}", 17)), 400,
               "malformed_json", "raw NUL");
  expect_error(client.post(progress, std::string("{\"message\":\"a\nb\"}")), 400, "malformed_json",
               "raw newline");
}

TEST_F(BadInputTest, EscapedNulAndControlCharactersAreDataAndComeBackEscaped) {
  const auto response =
      client.post(session_path(session, "/progress"), "{\"message\":\"a\\u0000b\\r\\nc\"}");
  ASSERT_EQ(response.status, 200u) << response.body;
  EXPECT_EQ(response.json().at("event").at("message").as_string(), std::string("a\0b\r\nc", 6));
  // In the event stream it stays one JSON-escaped data line: it cannot break the framing.
  const auto replay = client.get(session_path(session, "/stream"));
  const auto messages = parse_sse(replay.body);
  ASSERT_EQ(messages.size(), 3u) << replay.body;  // snapshot, the event, done
  EXPECT_EQ(json::parse(messages[1].data).at("message").as_string(), std::string("a\0b\r\nc", 6));
}

TEST_F(BadInputTest, TenMegabyteBodyIs413WithoutBeingRead) {
  const std::string huge(10 * 1024 * 1024, 'x');
  const auto response = client.post(session_path(session, "/progress"), huge);
  expect_error(response, 413, "input_too_large", "10 MB body");
  EXPECT_EQ(response.header("connection"), "close");
}

TEST_F(BadInputTest, BodyShorterThanItsContentLengthIs400) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), gateway.port()));
  asio::write(stream, asio::buffer(post_raw(session_path(session, "/progress"),
                                            "Content-Length: 100\r\n", "{\"message\":\"short\"}")));
  // The client says it is done sending; the announced 100 bytes will never come.
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send);
  std::string received;
  char chunk[4096];
  beast::error_code ec;
  while (!ec) {
    stream.expires_after(std::chrono::seconds(10));
    received.append(chunk, stream.read_some(asio::buffer(chunk), ec));
  }
  const RawAnswer answer = parse_answer(received);
  EXPECT_EQ(answer.status, 400u) << received;
  EXPECT_EQ(error_code_of(answer), "malformed_request");
  EXPECT_TRUE(client.get(session_path(session, "/stream")).body.find("short") == std::string::npos)
      << "the truncated body must not have been appended";
}

TEST_F(BadInputTest, BrokenHttpFramingIs400AndClosesTheConnection) {
  const std::string progress = session_path(session, "/progress");
  const std::string body = "{\"message\":\"hi\"}";
  expect_raw_error(post_raw(progress, "Content-Length: 16\r\nContent-Length: 17\r\n", body), 400,
                   "malformed_request", "conflicting Content-Length");
  expect_raw_error(post_raw(progress, "Content-Length: -1\r\n", body), 400, "malformed_request",
                   "negative Content-Length");
  expect_raw_error(
      post_raw(progress, "Transfer-Encoding: chunked\r\n", "zz\r\n" + body + "\r\n0\r\n\r\n"), 400,
      "malformed_request", "chunk size not hex");
  expect_raw_error(post_raw(progress, "Transfer-Encoding: chunked\r\n",
                            "ffffffffffffffffff\r\n" + body + "\r\n0\r\n\r\n"),
                   400, "malformed_request", "chunk size past 64 bits");
  expect_raw_error("GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed_request",
                   "unknown HTTP version");
  expect_raw_error("GET /healthz HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400, "malformed_request",
                   "bare CR in a header");
  // Repeating the same Content-Length is allowed (RFC 9110, section 8.6), and so is a
  // well-formed chunked body.
  const RawAnswer repeated = parse_answer(raw_exchange(
      gateway.port(),
      post_raw(progress, "Content-Length: 16\r\nContent-Length: 16\r\nConnection: close\r\n",
               body)));
  EXPECT_EQ(repeated.status, 200u) << repeated.body;
  const RawAnswer chunked = parse_answer(raw_exchange(
      gateway.port(), post_raw(progress, "Transfer-Encoding: chunked\r\nConnection: close\r\n",
                               "10\r\n" + body + "\r\n0\r\n\r\n")));
  EXPECT_EQ(chunked.status, 200u) << chunked.body;
}

TEST_F(BadInputTest, HeaderInjectionThroughTheCursorIsRefused) {
  const auto response =
      client.get(session_path(session, "/stream?last_event_id=1%0D%0ASet-Cookie:%20x%3D1"));
  expect_error(response, 400, "invalid_cursor", "CRLF in last_event_id");
  EXPECT_EQ(response.header("set-cookie"), "");
  const auto header =
      client.get(session_path(session, "/stream"), {{"Last-Event-ID", "1 ; Set-Cookie: x=1"}});
  expect_error(header, 400, "invalid_cursor", "junk in Last-Event-ID");
  EXPECT_EQ(header.header("set-cookie"), "");
}

TEST_F(BadInputTest, VeryLongWorkspaceIdsAndMessages) {
  // Up to the body limit they are data, kept exactly; past it, 413.
  const std::string long_message(7000, 'm');
  const auto kept =
      client.post(session_path(session, "/progress"), json_body({{"message", long_message}}));
  ASSERT_EQ(kept.status, 200u);
  EXPECT_EQ(kept.json().at("event").at("message").as_string(), long_message);
  const std::string long_workspace(7000, 'w');
  const auto opened = client.post(kSessions, json_body({{"workspace_id", long_workspace}}));
  ASSERT_EQ(opened.status, 200u);
  EXPECT_EQ(opened.json().at("session").at("workspace_id").as_string(), long_workspace);
  expect_error(client.post(kSessions, json_body({{"workspace_id", std::string(9000, 'w')}})), 413,
               "input_too_large", "workspace id past the body limit");
}

TEST_F(BadInputTest, EncodedSlashesAndDotSegmentsNeverReachAnotherRoute) {
  for (const std::string& id :
       std::vector<std::string>{"a%2Fb", "%2E%2E", "..", ".", "%2e", session + "%2F..%2Fstatus"}) {
    expect_error(client.get(kSessions + "/" + id), 404, "external_coding_agent_session_not_found",
                 "session id " + id);
  }
  // Dot segments are not resolved: the path is routed as written.
  expect_error(client.get(kSessions + "/" + session + "/../../../status"), 404, "not_found",
               "dot segments");
  expect_error(client.get("/gateway/./status"), 404, "not_found", "single dot segment");
}

TEST_F(BadInputTest, Http10AndPipelinedRequestsAreServedInOrder) {
  const RawAnswer old =
      parse_answer(raw_exchange(gateway.port(), "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(old.version, "HTTP/1.0");
  EXPECT_EQ(old.status, 200u);

  const std::string pipelined = "GET " + session_path(session) + " HTTP/1.1\r\nHost: x\r\n\r\n" +
                                post_raw(session_path(session, "/progress"),
                                         "Content-Length: 19\r\n", "{\"message\":\"piped\"}") +
                                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string received = raw_exchange(gateway.port(), pipelined);
  const RawAnswer first = parse_answer(received);
  const RawAnswer second = parse_answer(first.rest);
  const RawAnswer third = parse_answer(second.rest);
  EXPECT_EQ(first.status, 200u);
  EXPECT_EQ(json::parse(first.body).at("session").at("session_id").as_string(), session);
  EXPECT_EQ(second.status, 200u) << second.body;
  EXPECT_EQ(json::parse(second.body).at("event").at("message").as_string(), "piped");
  EXPECT_EQ(third.status, 200u);
  EXPECT_EQ(json::parse(third.body).at("status").as_string(), "ok");
}

}  // namespace
}  // namespace tau::test
