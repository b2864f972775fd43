// Connection limits and timeouts against the real binary: oversize headers and targets, slow
// headers and bodies, idle keep-alive connections, and the connection cap.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;

// A raw loopback connection that the test drives by hand.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) : stream_(io_) {
    stream_.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  void send(const std::string& bytes) { asio::write(stream_, asio::buffer(bytes)); }
  // Everything received until the server closes, or `timeout` of silence (then `closed` is
  // false).
  std::string read_until_closed(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string received;
    char chunk[4096];
    while (true) {
      beast::error_code ec;
      stream_.expires_after(timeout);
      received.append(chunk, stream_.read_some(asio::buffer(chunk), ec));
      if (ec) {
        if (closed)
          *closed = ec != beast::error::timeout;
        return received;
      }
    }
  }
  // What one read returns (waiting at most `timeout`); empty once the server has closed.
  std::string read_some(std::chrono::milliseconds timeout) {
    char chunk[4096];
    beast::error_code ec;
    stream_.expires_after(timeout);
    return std::string(chunk, stream_.read_some(asio::buffer(chunk), ec));
  }
  // Reads one response (up to its Content-Length body) from a keep-alive connection.
  std::string read_response() {
    std::string received;
    char chunk[4096];
    while (true) {
      const auto header_end = received.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        const auto length_at = received.find("Content-Length: ");
        const auto length = std::stoul(received.substr(length_at + 16));
        if (received.size() >= header_end + 4 + length)
          return received;
      }
      stream_.expires_after(std::chrono::seconds(10));
      received.append(chunk, stream_.read_some(asio::buffer(chunk)));
    }
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
};

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string body_of(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}

const std::string kHealth = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(ConnectionHygiene, OversizeHeaderIs431AndLongTargetIs414InTheEnvelope) {
  GatewayProcess gateway(
      {"--auth-mode", "localhost-dev", "--max-header-bytes", "4096", "--max-target-bytes", "1024"});
  const std::string big_header =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(5000, 'a') + "\r\n\r\n";
  const std::string refused = raw_exchange(gateway.port(), big_header);
  EXPECT_EQ(status_line(refused), "HTTP/1.1 431 Request Header Fields Too Large") << refused;
  EXPECT_NE(refused.find("Connection: close"), std::string::npos) << refused;
  EXPECT_EQ(json::parse(body_of(refused)).at("error").at("code"), "header_too_large");

  const std::string long_target =
      "GET /healthz?" + std::string(1100, 'q') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string too_long = raw_exchange(gateway.port(), long_target);
  EXPECT_EQ(status_line(too_long), "HTTP/1.1 414 URI Too Long") << too_long;
  EXPECT_EQ(json::parse(body_of(too_long)).at("error").at("code"), "target_too_long");

  // Just under both limits is served.
  const std::string fits = "GET /healthz?" + std::string(900, 'q') +
                           " HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2500, 'a') +
                           "\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(status_line(raw_exchange(gateway.port(), fits)), "HTTP/1.1 200 OK");
}

TEST(ConnectionHygiene, AHeaderThatDoesNotCompleteInTimeIsCutOffUnanswered) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--header-timeout-ms", "200"});
  RawConnection slow(gateway.port());
  slow.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished
  bool closed = false;
  const std::string received = slow.read_until_closed(std::chrono::seconds(10), &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(received, "");
  EXPECT_EQ(HttpClient(gateway.port()).get("/healthz").status, 200u);
}

TEST(ConnectionHygiene, ABodyThatDoesNotArriveInTimeIsCutOff) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--body-timeout-ms", "200"});
  RawConnection slow(gateway.port());
  slow.send(
      "POST /gateway/external-coding-agent/sessions HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"workspace_id\":");
  bool closed = false;
  EXPECT_EQ(slow.read_until_closed(std::chrono::seconds(10), &closed), "");
  EXPECT_TRUE(closed);
  // Nothing was opened from the partial body.
  const auto sessions = HttpClient(gateway.port()).get(kSessions).json();
  EXPECT_TRUE(sessions.at("sessions").as_array().empty());
}

TEST(ConnectionHygiene, IdleKeepAliveConnectionsCloseButOpenStreamsDoNot) {
  GatewayProcess gateway(
      {"--auth-mode", "localhost-dev", "--idle-timeout-ms", "200", "--sse-heartbeat-ms", "100"});
  RawConnection idle(gateway.port());
  idle.send(kHealth);
  EXPECT_EQ(status_line(idle.read_response()), "HTTP/1.1 200 OK");
  bool closed = false;
  EXPECT_EQ(idle.read_until_closed(std::chrono::seconds(10), &closed), "");
  EXPECT_TRUE(closed) << "an idle keep-alive connection stays open past the idle timeout";

  // A follow stream sends only heartbeats for well past the idle timeout, and stays open.
  HttpClient client(gateway.port());
  const std::string session = open_session(client, "repo");
  RawConnection stream(gateway.port());
  stream.send("GET " + session_path(session, "/stream?follow=true") +
              " HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string received;
  int keepalives = 0;
  while (keepalives < 5) {  // 5 heartbeats of 100 ms: more than twice the idle timeout
    const std::string got = stream.read_some(std::chrono::seconds(10));
    ASSERT_FALSE(got.empty()) << "the stream closed or went silent after: " << received;
    received += got;
    keepalives = 0;
    for (auto at = received.find(": keepalive"); at != std::string::npos;
         at = received.find(": keepalive", at + 1))
      ++keepalives;
  }
}

TEST(ConnectionHygiene, ConnectionsBeyondTheCapAreClosedAndOpenOnesKeepWorking) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--max-connections", "3"});
  std::vector<std::unique_ptr<RawConnection>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<RawConnection>(gateway.port()));
    open.back()->send(kHealth);
    ASSERT_EQ(status_line(open.back()->read_response()), "HTTP/1.1 200 OK");
  }
  RawConnection extra(gateway.port());
  bool closed = false;
  extra.send(kHealth);
  EXPECT_EQ(extra.read_until_closed(std::chrono::seconds(10), &closed), "");
  EXPECT_TRUE(closed);
  for (auto& connection : open) {
    connection->send(kHealth);
    EXPECT_EQ(status_line(connection->read_response()), "HTTP/1.1 200 OK");
  }
  // A freed slot is usable again (once the server has seen the close).
  open.pop_back();
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    served = raw_exchange(gateway.port(),
                          "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                 .starts_with("HTTP/1.1 200");
  }
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace tau::test
