#include "support/http_client.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>

namespace tau::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

std::string HttpResponse::header(const std::string& lower_case_name) const {
  auto found = headers.find(lower_case_name);
  return found == headers.end() ? std::string() : found->second;
}

json::value HttpResponse::json() const {
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  EXPECT_FALSE(ec) << "body is not JSON: " << body;
  return value;
}

std::string HttpResponse::error_code() const {
  const json::value value = json();
  const json::object* envelope = value.if_object();
  if (envelope == nullptr || !envelope->contains("error")) {
    ADD_FAILURE() << "not an error envelope: " << body;
    return {};
  }
  const json::object& error = envelope->at("error").as_object();
  EXPECT_EQ(error.at("type").as_string(), status >= 500 ? "server_error" : "invalid_request_error")
      << body;
  EXPECT_FALSE(error.at("message").as_string().empty()) << body;
  EXPECT_EQ(header("content-type"), "application/json");
  return std::string(error.at("code").as_string());
}

HttpResponse HttpClient::get(const std::string& target, const Headers& headers) const {
  return request("GET", target, std::nullopt, headers);
}

HttpResponse HttpClient::post(const std::string& target, const std::string& body,
                              const Headers& headers) const {
  return request("POST", target, body, headers);
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 std::optional<std::string> body, const Headers& headers) const {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(30));
  if (!source_address_.empty()) {
    stream.socket().open(asio::ip::tcp::v4());
    stream.socket().bind(asio::ip::tcp::endpoint(asio::ip::make_address(source_address_), 0));
  }
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));

  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
  if (!bearer_token_.empty())
    request.set(http::field::authorization, "Bearer " + bearer_token_);
  for (const auto& [name, value] : headers)
    request.set(name, value);
  if (body) {
    // JSON unless the test names another type.
    if (request.find(http::field::content_type) == request.end())
      request.set(http::field::content_type, "application/json");
    request.body() = *body;
  }
  request.prepare_payload();
  http::write(stream, request);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser);
  const auto& message = parser.get();

  HttpResponse response;
  response.status = message.result_int();
  for (const auto& field : message.base()) {
    std::string name(field.name_string());
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers[name] = std::string(field.value());
  }
  response.body = message.body();
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  return response;
}

std::string raw_exchange(std::uint16_t port, const std::string& bytes, int read_timeout_ms) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  stream.expires_after(std::chrono::milliseconds(read_timeout_ms));
  asio::write(stream, asio::buffer(bytes));
  std::string received;
  char chunk[4096];
  while (true) {
    beast::error_code ec;
    stream.expires_after(std::chrono::milliseconds(read_timeout_ms));
    const std::size_t got = stream.read_some(asio::buffer(chunk), ec);
    received.append(chunk, got);
    if (ec)
      break;
  }
  return received;
}

std::vector<SseMessage> parse_sse(const std::string& body) {
  std::vector<SseMessage> messages;
  SseMessage current;
  bool has_data = false;
  std::size_t position = 0;
  while (position < body.size()) {
    std::size_t end = body.find_first_of("\r\n", position);
    if (end == std::string::npos)
      break;  // an unterminated last line is not dispatched
    const std::string line = body.substr(position, end - position);
    position = end + 1;
    if (body[end] == '\r' && position < body.size() && body[position] == '\n')
      ++position;

    if (line.empty()) {
      if (has_data) {
        if (!current.data.empty() && current.data.back() == '\n')
          current.data.pop_back();
        messages.push_back(current);
      }
      current.data.clear();
      current.event.clear();
      current.id.clear();
      current.retry_ms.reset();
      has_data = false;
      continue;
    }
    if (line.front() == ':')
      continue;
    const std::size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value = colon == std::string::npos ? std::string() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.erase(0, 1);
    if (field == "data") {
      current.data += value + "\n";
      has_data = true;
    } else if (field == "event") {
      current.event = value;
    } else if (field == "id") {
      if (value.find('\0') == std::string::npos)
        current.id = value;
    } else if (field == "retry") {
      current.retry_ms = std::stoll(value);
    }
  }
  return messages;
}

struct SseStream::Connection {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
};

SseStream::SseStream(std::uint16_t port, const std::string& target, const Headers& headers)
    : connection_(std::make_unique<Connection>()) {
  auto& c = *connection_;
  c.parser.body_limit(boost::none);  // a follow stream has no length; Beast's default is 8 MB
  c.stream.expires_after(std::chrono::seconds(20));
  c.stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  request.set(http::field::accept, "text/event-stream");
  for (const auto& [name, value] : headers)
    request.set(name, value);
  http::write(c.stream, request);
  http::read_header(c.stream, c.buffer, c.parser);
  head_.status = c.parser.get().result_int();
  for (const auto& field : c.parser.get().base()) {
    std::string name(field.name_string());
    for (char& ch : name)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    head_.headers[name] = std::string(field.value());
  }
}

SseStream::~SseStream() = default;

std::optional<SseMessage> SseStream::next(std::chrono::milliseconds timeout) {
  auto& c = *connection_;
  while (true) {
    const std::size_t end = pending_.find("\n\n");
    if (end != std::string::npos) {
      const std::string block = pending_.substr(0, end + 2);
      pending_.erase(0, end + 2);
      if (block.front() == ':') {
        SseMessage comment;
        comment.event = ":";
        comment.data = block.substr(1, block.size() - 3);
        if (!comment.data.empty() && comment.data.front() == ' ')
          comment.data.erase(0, 1);
        return comment;
      }
      auto messages = parse_sse(block);
      if (messages.empty())
        continue;  // e.g. a block holding only a retry field
      return messages.front();
    }
    if (ended_ || c.parser.is_done()) {
      ended_ = true;
      return std::nullopt;
    }
    char chunk[8192];
    c.parser.get().body().data = chunk;
    c.parser.get().body().size = sizeof chunk;
    c.stream.expires_after(timeout);
    beast::error_code ec;
    http::read_some(c.stream, c.buffer, c.parser, ec);
    if (ec == http::error::need_buffer)
      ec = {};
    pending_.append(chunk, sizeof chunk - c.parser.get().body().size);
    if (ec == beast::error::timeout) {
      throw std::runtime_error("no SSE data within the deadline");
    }
    if (ec)
      ended_ = true;  // the server closed the connection (possibly mid-response)
  }
}

std::optional<SseMessage> SseStream::next_message(std::chrono::milliseconds timeout) {
  while (auto message = next(timeout)) {
    if (message->event != ":")
      return message;
  }
  return std::nullopt;
}

bool SseStream::completed() const {
  return connection_->parser.is_done();
}

void SseStream::disconnect() {
  beast::error_code ignored;
  connection_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  connection_->stream.socket().close(ignored);
}

std::string json_body(const json::object& fields) {
  return json::serialize(fields);
}

std::string open_session(const HttpClient& client, const std::string& workspace_id) {
  const auto response = client.post(kSessions, json_body({{"workspace_id", workspace_id}}));
  EXPECT_EQ(response.status, 200u) << response.body;
  if (response.status != 200)
    return {};
  return std::string(response.json().at("session").at("session_id").as_string());
}

json::value status_runtime(const HttpClient& client) {
  const auto response = client.get("/gateway/status");
  EXPECT_EQ(response.status, 200u) << response.body;
  return response.json().at("gateway").at("external_coding_agent").at("runtime");
}

std::vector<SseMessage> replayed_events(const HttpClient& client, const std::string& session_id,
                                        const std::string& query, const Headers& headers) {
  const auto response = client.get(session_path(session_id, "/stream" + query), headers);
  EXPECT_EQ(response.status, 200u) << response.body;
  std::vector<SseMessage> events;
  for (auto& message : parse_sse(response.body)) {
    if (message.event == "external_coding_agent.progress")
      events.push_back(std::move(message));
  }
  return events;
}

}  // namespace tau::test
