// Slow and hostile clients: 1,000 connections trickling a header one byte per second and 1,000
// follow streams that never read, while a normal client keeps being served. The slow ones must
// be cut off by the header timeout and the slow-consumer rule, and every request of the normal
// client must be answered. Its latency is printed, not judged: a bound on time fails on a loaded
// machine, and latency is the benchmarks' business (docs/benchmarks.md). Runs alone (RUN_SERIAL):
// its 2,000 connections and fanned-out events load both cores.
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr int kSlowHeaders = 1000;
constexpr int kStalledStreams = 1000;

double metric(const HttpClient& client, const std::string& name) {
  const std::string text = client.get("/metrics").body;
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

// The kernel's view of a client socket: whether the server has closed or reset it.
bool closed_by_peer(asio::ip::tcp::socket& socket) {
  tcp_info info{};
  socklen_t length = sizeof info;
  ::getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &length);
  return info.tcpi_state == TCP_CLOSE_WAIT || info.tcpi_state == TCP_CLOSE;
}

TEST(HostileClients, SlowHeadersAndStalledStreamsAreCutOffWhileOthersAreServed) {
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--header-timeout-ms", "2000",
                          "--sse-max-buffered-bytes", "65536", "--max-streams", "5000",
                          "--max-events-per-session", "1000", "--rate-limit-max-requests",
                          "100000000", "--threads", "2"});
  HttpClient client(gateway.port());
  const std::string session = open_session(client, "hostile");
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), gateway.port());

  asio::io_context io;
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> slow;
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> stalled;
  for (int i = 0; i < kSlowHeaders; ++i) {
    slow.push_back(std::make_unique<asio::ip::tcp::socket>(io));
    slow.back()->connect(endpoint);
  }
  const std::string stream_request =
      "GET " + session_path(session, "/stream?follow=true") + " HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < kStalledStreams; ++i) {
    stalled.push_back(std::make_unique<asio::ip::tcp::socket>(io));
    auto& socket = *stalled.back();
    socket.open(asio::ip::tcp::v4());
    // A small receive window, so the gateway's writes block soon once nobody reads.
    socket.set_option(asio::socket_base::receive_buffer_size(4096));
    socket.connect(endpoint);
    asio::write(socket, asio::buffer(stream_request));
  }
  const auto connected_by = Clock::now() + std::chrono::seconds(30);
  while (metric(client, "tau_gateway_follow_streams") < kStalledStreams)
    ASSERT_LT(Clock::now(), connected_by) << "the stalled streams never all opened";

  // The slow clients send one more header byte every second, from their own thread.
  const std::string header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaa\r\n";
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    for (std::size_t byte = 0; byte < header.size() && !stop; ++byte) {
      for (auto& socket : slow) {
        boost::system::error_code ignored;
        socket->write_some(asio::buffer(&header[byte], 1), ignored);
      }
      for (int tick = 0; tick < 10 && !stop; ++tick)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  // Meanwhile a normal client posts 32 KB events (fanned out to every stalled stream) and reads.
  // The stalled streams are cut once about 1 MB each is pending (the kernel's buffers, then the
  // backlog limit): a volume, not a time, so the deadline below only bounds a hang. On a loaded
  // machine an instrumented gateway took a minute for a few hundred smaller posts.
  const std::string message(32768, 'e');
  std::vector<double> latencies_ms;
  const auto give_up = Clock::now() + std::chrono::seconds(150);
  int slow_open = kSlowHeaders;
  double streams_open = kStalledStreams;
  while ((slow_open > 0 || streams_open > 0) && Clock::now() < give_up) {
    for (int i = 0; i < 10; ++i) {
      const auto started = Clock::now();
      ASSERT_EQ(
          client.post(session_path(session, "/progress"), json_body({{"message", message}})).status,
          200u);
      ASSERT_EQ(client.get(session_path(session)).status, 200u);
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - started).count() / 2);
    }
    slow_open = static_cast<int>(std::count_if(
        slow.begin(), slow.end(), [](auto& socket) { return !closed_by_peer(*socket); }));
    streams_open = metric(client, "tau_gateway_follow_streams");
  }
  stop = true;
  trickler.join();

  EXPECT_EQ(slow_open, 0) << "slow headers still open after 150 s";
  EXPECT_EQ(streams_open, 0) << "stalled streams still open after 150 s";
  for (auto& socket : slow) {
    // Cut off without an answer: nothing was ever complete enough to answer.
    EXPECT_EQ(socket->available(), 0u);
  }
  // Every normal request was answered (the ASSERTs above); how fast is only reported.
  ASSERT_FALSE(latencies_ms.empty());
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf("normal requests: %zu, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", latencies_ms.size(),
              latencies_ms[latencies_ms.size() / 2], latencies_ms[latencies_ms.size() * 99 / 100],
              latencies_ms.back());
}

}  // namespace
}  // namespace tau::test
