// sse_load: SSE fan-out load generator for `make bench-sse`.
//
// Opens N streaming subscribers (GET --stream-url) on loopback, waits until every one has its
// response header, samples the server's resident memory (VmRSS of --pid) before connecting and
// with all N idle streams open, then posts M events at --rate events/s over a few keep-alive
// connections (POST --publish-url). Each event carries its send time (steady clock, ns); every
// subscriber parses the SSE `data:` lines it receives, extracts the time and records the
// post-to-delivery latency. Works against the gateway (--publish-format gateway: JSON
// {"message":"<ns>"}, the number comes back in the event's "message" field) and against Nchan
// (--publish-format nchan: raw body "<ns>", delivered as `data: <ns>`).
//
// Output: a human-readable summary on stderr and one `RESULT key=value ...` line on stdout.
// Single-threaded: one io_context, C++20 coroutines.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "process_stats.h"

using tau::bench::raise_nofile_limit;
using tau::bench::read_cpu_ticks;
using tau::bench::read_rss_kib;
using tau::bench::self_cpu_s;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Url {
  std::string host;
  std::string port;
  std::string target;
};

std::optional<Url> parse_url(std::string_view text) {
  constexpr std::string_view scheme = "http://";
  if (!text.starts_with(scheme))
    return std::nullopt;
  text.remove_prefix(scheme.size());
  const auto slash = text.find('/');
  const std::string_view authority = text.substr(0, slash);
  Url url;
  url.target = slash == std::string_view::npos ? "/" : std::string(text.substr(slash));
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    url.host = std::string(authority);
    url.port = "80";
  } else {
    url.host = std::string(authority.substr(0, colon));
    url.port = std::string(authority.substr(colon + 1));
  }
  if (url.host.empty() || url.port.empty())
    return std::nullopt;
  return url;
}

struct Options {
  std::string stream_url;
  std::string publish_url;
  std::string publish_format = "gateway";
  std::size_t streams = 1000;
  std::size_t events = 100;
  double rate = 50.0;
  long pid = 0;
  std::size_t publishers = 4;
  std::size_t connect_concurrency = 256;
  double connect_timeout_s = 60.0;
  double drain_timeout_s = 10.0;
  double settle_s = 1.0;
  std::string label;
  bool per_event = false;
};

[[noreturn]] void usage(const char* argv0, const std::string& error) {
  if (!error.empty())
    std::cerr << argv0 << ": " << error << "\n";
  std::cerr << "usage: " << argv0
            << " --stream-url URL --publish-url URL [options]\n"
               "  --stream-url URL         subscriber URL (GET), e.g. "
               "http://127.0.0.1:P/.../stream?follow=true\n"
               "  --publish-url URL        publisher URL (POST)\n"
               "  --publish-format F       gateway (JSON {\"message\":\"<ns>\"}) or nchan (raw "
               "body \"<ns>\")\n"
               "  --streams N              subscribers to open (default 1000)\n"
               "  --events M               events to post (default 100)\n"
               "  --rate R                 events per second (default 50)\n"
               "  --pid PID                server process whose VmRSS is sampled (0: none)\n"
               "  --publishers K           keep-alive publishing connections (default 4)\n"
               "  --connect-concurrency C  connects in flight at once (default 256)\n"
               "  --drain-timeout S        give up S seconds after the last delivery (default 10)\n"
               "  --settle S               after connecting, wait S s, then until the server is "
               "idle (default 1)\n"
               "  --label TEXT             copied into the RESULT line\n"
               "  --per-event 1            also print each event's delivery count and latencies\n";
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h")
      usage(argv[0], "");
    if (i + 1 >= argc)
      usage(argv[0], "missing value for " + std::string(flag));
    const std::string value = argv[++i];
    try {
      if (flag == "--stream-url")
        o.stream_url = value;
      else if (flag == "--publish-url")
        o.publish_url = value;
      else if (flag == "--publish-format")
        o.publish_format = value;
      else if (flag == "--streams")
        o.streams = std::stoul(value);
      else if (flag == "--events")
        o.events = std::stoul(value);
      else if (flag == "--rate")
        o.rate = std::stod(value);
      else if (flag == "--pid")
        o.pid = std::stol(value);
      else if (flag == "--publishers")
        o.publishers = std::stoul(value);
      else if (flag == "--connect-concurrency")
        o.connect_concurrency = std::stoul(value);
      else if (flag == "--connect-timeout")
        o.connect_timeout_s = std::stod(value);
      else if (flag == "--drain-timeout")
        o.drain_timeout_s = std::stod(value);
      else if (flag == "--settle")
        o.settle_s = std::stod(value);
      else if (flag == "--label")
        o.label = value;
      else if (flag == "--per-event")
        o.per_event = value == "1" || value == "true";
      else
        usage(argv[0], "unknown flag " + std::string(flag));
    } catch (const std::exception&) {
      usage(argv[0], "bad value for " + std::string(flag) + ": " + value);
    }
  }
  if (o.stream_url.empty() || o.publish_url.empty())
    usage(argv[0], "need --stream-url and --publish-url");
  if (o.publish_format != "gateway" && o.publish_format != "nchan")
    usage(argv[0], "--publish-format must be gateway or nchan");
  if (o.rate <= 0 || o.publishers == 0 || o.connect_concurrency == 0)
    usage(argv[0], "--rate, --publishers and --connect-concurrency must be positive");
  return o;
}

// Shared state; everything runs on one thread.
struct Bench {
  Options options;
  Url stream_url;
  Url publish_url;
  tcp::endpoint stream_endpoint;
  tcp::endpoint publish_endpoint;

  std::vector<std::unique_ptr<tcp::socket>> sockets;
  std::size_t connecting = 0;  // connects in flight
  std::size_t connected = 0;   // header received with status 200
  std::size_t connect_failed = 0;
  std::size_t ended_early = 0;  // streams that ended or failed before the stop
  bool stopping = false;

  std::int64_t post_start_ns = 0;  // send time of the first post
  std::size_t next_event = 0;
  std::size_t posted = 0;
  std::size_t post_failed = 0;
  std::int64_t max_post_lag_ns = 0;  // how far behind schedule a post went out
  bool posting_done = false;

  std::vector<std::int64_t> latencies_ns;
  std::size_t deliveries = 0;
  std::size_t ignored = 0;  // data lines without a timestamp of this run (replay, snapshot, ...)
  std::int64_t last_delivery_ns = 0;

  // Per event, in send order (send times increase: one thread takes them).
  std::vector<std::int64_t> sent_ns;
  std::vector<std::size_t> event_deliveries;
  std::vector<std::int64_t> event_max_ns;
  std::vector<std::int64_t> event_last_ns;
};

// Prints the first few stream errors only; the rest are counted in the summary.
void report_stream_error(std::size_t index, const std::string& what) {
  static std::size_t reported = 0;
  if (++reported <= 5)
    std::cerr << "stream " << index << ": " << what << "\n";
  if (reported == 6)
    std::cerr << "(further stream errors not shown)\n";
}

// Extracts the send timestamp from one SSE data line's value, if it carries one.
std::optional<std::int64_t> timestamp_of(std::string_view data) {
  constexpr std::string_view key = "\"message\":\"";
  if (const auto at = data.find(key); at != std::string_view::npos) {
    data.remove_prefix(at + key.size());
  }
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(data.data(), data.data() + data.size(), value);
  if (ec != std::errc{} || end == data.data())
    return std::nullopt;
  return value;
}

void on_sse_line(Bench& bench, std::string_view line, std::int64_t received_ns) {
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  if (!line.starts_with("data:"))
    return;
  line.remove_prefix(5);
  if (line.starts_with(' '))
    line.remove_prefix(1);
  const auto ts = timestamp_of(line);
  if (!ts || bench.post_start_ns == 0 || *ts < bench.post_start_ns) {
    ++bench.ignored;
    return;
  }
  bench.latencies_ns.push_back(received_ns - *ts);
  ++bench.deliveries;
  bench.last_delivery_ns = received_ns;
  const auto at = std::lower_bound(bench.sent_ns.begin(), bench.sent_ns.end(), *ts);
  if (at != bench.sent_ns.end() && *at == *ts) {
    const auto event = static_cast<std::size_t>(at - bench.sent_ns.begin());
    ++bench.event_deliveries[event];
    bench.event_max_ns[event] = std::max(bench.event_max_ns[event], received_ns - *ts);
    bench.event_last_ns[event] = received_ns;
  }
}

awaitable<void> subscriber(Bench& bench, std::size_t index) {
  auto& socket = *bench.sockets[index];
  bool counted_connected = false;
  try {
    co_await socket.async_connect(bench.stream_endpoint, use_awaitable);
    socket.set_option(tcp::no_delay(true));
    http::request<http::empty_body> request{http::verb::get, bench.stream_url.target, 11};
    request.set(http::field::host, bench.stream_url.host + ":" + bench.stream_url.port);
    request.set(http::field::accept, "text/event-stream");
    co_await http::async_write(socket, request, use_awaitable);

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    co_await http::async_read_header(socket, buffer, parser, use_awaitable);
    --bench.connecting;
    if (parser.get().result() != http::status::ok) {
      ++bench.connect_failed;
      report_stream_error(index, "HTTP " + std::to_string(parser.get().result_int()));
      co_return;
    }
    ++bench.connected;
    counted_connected = true;

    std::string partial;  // an incomplete SSE line carried over between reads
    char chunk[8192];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      auto [ec, n] =
          co_await http::async_read_some(socket, buffer, parser, asio::as_tuple(use_awaitable));
      (void)n;
      if (ec && ec != http::error::need_buffer) {
        if (!bench.stopping) {
          ++bench.ended_early;
          report_stream_error(index, ec.message());
        }
        co_return;
      }
      const std::size_t got = sizeof chunk - parser.get().body().size;
      if (got == 0)
        continue;
      const std::int64_t received = now_ns();
      std::string_view text(chunk, got);
      while (!text.empty()) {
        const auto newline = text.find('\n');
        if (newline == std::string_view::npos) {
          partial.append(text);
          break;
        }
        if (partial.empty()) {
          on_sse_line(bench, text.substr(0, newline), received);
        } else {
          partial.append(text.substr(0, newline));
          on_sse_line(bench, partial, received);
          partial.clear();
        }
        text.remove_prefix(newline + 1);
      }
    }
    if (!bench.stopping)
      ++bench.ended_early;
  } catch (const std::exception& e) {
    if (!counted_connected) {
      --bench.connecting;
      ++bench.connect_failed;
      const auto* system_error = dynamic_cast<const boost::system::system_error*>(&e);
      report_stream_error(index, system_error ? system_error->code().message() : e.what());
    } else if (!bench.stopping) {
      ++bench.ended_early;
    }
  }
}

std::string publish_body(const Bench& bench, std::int64_t ts) {
  if (bench.options.publish_format == "nchan")
    return std::to_string(ts);
  return "{\"message\":\"" + std::to_string(ts) + "\"}";
}

awaitable<void> publisher(Bench& bench, std::int64_t schedule_start_ns) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  co_await socket.async_connect(bench.publish_endpoint, use_awaitable);
  socket.set_option(tcp::no_delay(true));
  asio::steady_timer timer(executor);
  beast::flat_buffer buffer;
  const double interval_ns = 1e9 / bench.options.rate;
  while (bench.next_event < bench.options.events) {
    const std::size_t index = bench.next_event++;
    const auto due =
        schedule_start_ns + static_cast<std::int64_t>(interval_ns * static_cast<double>(index));
    timer.expires_at(Clock::time_point(std::chrono::nanoseconds(due)));
    co_await timer.async_wait(use_awaitable);

    const std::int64_t ts = now_ns();
    if (bench.post_start_ns == 0)
      bench.post_start_ns = ts;
    bench.sent_ns.push_back(ts);
    bench.event_deliveries.push_back(0);
    bench.event_max_ns.push_back(0);
    bench.event_last_ns.push_back(0);
    bench.max_post_lag_ns = std::max(bench.max_post_lag_ns, ts - due);
    http::request<http::string_body> request{http::verb::post, bench.publish_url.target, 11};
    request.set(http::field::host, bench.publish_url.host + ":" + bench.publish_url.port);
    request.set(http::field::content_type,
                bench.options.publish_format == "nchan" ? "text/plain" : "application/json");
    request.keep_alive(true);
    request.body() = publish_body(bench, ts);
    request.prepare_payload();
    co_await http::async_write(socket, request, use_awaitable);
    http::response<http::string_body> response;
    co_await http::async_read(socket, buffer, response, use_awaitable);
    if (response.result_int() / 100 != 2) {
      ++bench.post_failed;
      std::cerr << "post " << index << ": HTTP " << response.result_int() << " " << response.body()
                << "\n";
    } else {
      ++bench.posted;
    }
    if (!response.keep_alive()) {
      std::cerr << "publisher: server closed the keep-alive connection\n";
      break;
    }
  }
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

awaitable<void> sleep_for(double seconds) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9)));
  co_await timer.async_wait(use_awaitable);
}

// Waits at least min_s seconds, then until the server has used no CPU for 0.3 s (at most max_s),
// so that RSS is sampled after it has finished the work of the connects.
awaitable<double> settle(long pid, double min_s, double max_s) {
  const auto start = Clock::now();
  co_await sleep_for(min_s);
  long previous = read_cpu_ticks(pid);
  int quiet = 0;
  while (previous >= 0 && quiet < 3 &&
         std::chrono::duration<double>(Clock::now() - start).count() < max_s) {
    co_await sleep_for(0.1);
    const long ticks = read_cpu_ticks(pid);
    quiet = ticks - previous <= 0 ? quiet + 1 : 0;
    previous = ticks;
  }
  co_return std::chrono::duration<double>(Clock::now() - start).count();
}

double percentile_ms(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty())
    return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1e6;
}

awaitable<int> run(Bench& bench) {
  auto executor = co_await asio::this_coro::executor;
  const Options& o = bench.options;

  co_await settle(o.pid, 0, 10);
  const long rss_idle = read_rss_kib(o.pid);

  // Open the streams, at most connect_concurrency handshakes at a time.
  const auto connect_start = Clock::now();
  bench.sockets.reserve(o.streams);
  for (std::size_t i = 0; i < o.streams; ++i) {
    while (bench.connecting >= o.connect_concurrency)
      co_await sleep_for(0.001);
    bench.sockets.push_back(std::make_unique<tcp::socket>(executor));
    ++bench.connecting;
    asio::co_spawn(executor, subscriber(bench, i), asio::detached);
  }
  const auto deadline = connect_start + std::chrono::duration<double>(o.connect_timeout_s);
  while (bench.connected + bench.connect_failed < o.streams && Clock::now() < deadline)
    co_await sleep_for(0.01);
  const double connect_s = std::chrono::duration<double>(Clock::now() - connect_start).count();
  std::cerr << "connected " << bench.connected << "/" << o.streams << " streams in " << connect_s
            << " s (" << bench.connect_failed << " failed)\n";
  if (bench.connected == 0)
    co_return 1;

  const double settle_s = co_await settle(o.pid, o.settle_s, 30);
  std::cerr << "server idle again after " << settle_s << " s\n";
  const long rss_streams = read_rss_kib(o.pid);

  // Publish. CPU use of the server and of this process is measured from here to the last delivery.
  const long server_ticks_start = read_cpu_ticks(o.pid);
  const double self_cpu_start = self_cpu_s();
  const std::int64_t schedule_start = now_ns() + 10'000'000;
  const std::size_t publishers = std::min(o.publishers, std::max<std::size_t>(o.events, 1));
  std::size_t publishers_running = publishers;
  for (std::size_t i = 0; i < publishers; ++i) {
    asio::co_spawn(executor, publisher(bench, schedule_start),
                   [&bench, &publishers_running](std::exception_ptr error) {
                     if (error) {
                       try {
                         std::rethrow_exception(error);
                       } catch (const boost::system::system_error& e) {
                         std::cerr << "publisher failed: " << e.code().message() << "\n";
                         ++bench.post_failed;
                       } catch (const std::exception& e) {
                         std::cerr << "publisher failed: " << e.what() << "\n";
                         ++bench.post_failed;
                       }
                     }
                     --publishers_running;
                   });
  }
  while (publishers_running > 0)
    co_await sleep_for(0.005);
  const std::int64_t posting_end = now_ns();

  // Wait for the deliveries: all of them, or nothing new for drain_timeout seconds.
  const std::size_t expected = bench.connected * bench.posted;
  std::size_t seen = bench.deliveries;
  auto last_progress = Clock::now();
  while (bench.deliveries < expected) {
    co_await sleep_for(0.02);
    if (bench.deliveries != seen) {
      seen = bench.deliveries;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > std::chrono::duration<double>(o.drain_timeout_s)) {
      break;
    }
  }
  const long rss_end = read_rss_kib(o.pid);
  const long server_ticks_end = read_cpu_ticks(o.pid);
  const double self_cpu_end = self_cpu_s();
  const double window_s = static_cast<double>(now_ns() - schedule_start) / 1e9;
  const double server_cpu_pct =
      server_ticks_start >= 0 && server_ticks_end >= 0 && window_s > 0
          ? 100.0 * static_cast<double>(server_ticks_end - server_ticks_start) /
                static_cast<double>(sysconf(_SC_CLK_TCK)) / window_s
          : -1;
  const double self_cpu_pct =
      window_s > 0 ? 100.0 * (self_cpu_end - self_cpu_start) / window_s : -1;

  bench.stopping = true;
  for (auto& socket : bench.sockets) {
    beast::error_code ignored;
    socket->set_option(asio::socket_base::linger(true, 0), ignored);  // no TIME_WAIT pile-up
    socket->close(ignored);
  }

  if (o.per_event) {
    for (std::size_t i = 0; i < bench.sent_ns.size(); ++i) {
      std::fprintf(stderr, "event %zu: sent at +%.1f ms, %zu deliveries, max latency %.1f ms\n", i,
                   static_cast<double>(bench.sent_ns[i] - bench.post_start_ns) / 1e6,
                   bench.event_deliveries[i], static_cast<double>(bench.event_max_ns[i]) / 1e6);
    }
  }
  std::sort(bench.latencies_ns.begin(), bench.latencies_ns.end());
  const double p50 = percentile_ms(bench.latencies_ns, 0.50);
  const double p99 = percentile_ms(bench.latencies_ns, 0.99);
  const double max =
      bench.latencies_ns.empty() ? 0 : static_cast<double>(bench.latencies_ns.back()) / 1e6;
  const double span_s =
      bench.last_delivery_ns > bench.post_start_ns
          ? static_cast<double>(bench.last_delivery_ns - bench.post_start_ns) / 1e9
          : 0;
  const double deliveries_per_s = span_s > 0 ? static_cast<double>(bench.deliveries) / span_s : 0;
  const double post_s = static_cast<double>(posting_end - bench.post_start_ns) / 1e9;
  const double rss_per_stream_bytes = rss_idle >= 0 && rss_streams >= 0
                                          ? static_cast<double>(rss_streams - rss_idle) * 1024.0 /
                                                static_cast<double>(bench.connected)
                                          : -1;

  std::fprintf(
      stderr,
      "streams %zu, events posted %zu (%zu failed) in %.2f s (max lag behind schedule %.1f ms)\n"
      "deliveries %zu of %zu expected (%zu streams ended early, %zu other data lines)\n"
      "latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n"
      "deliveries/s %.0f over %.2f s (first post to last delivery)\n"
      "server RSS: idle %ld KiB, with streams %ld KiB (%.0f B/stream), at end %ld KiB\n"
      "CPU while publishing and delivering: server %.0f%%, load generator %.0f%% (of one core)\n",
      bench.connected, bench.posted, bench.post_failed, post_s,
      static_cast<double>(bench.max_post_lag_ns) / 1e6, bench.deliveries, expected,
      bench.ended_early, bench.ignored, p50, p99, max, deliveries_per_s, span_s, rss_idle,
      rss_streams, rss_per_stream_bytes, rss_end, server_cpu_pct, self_cpu_pct);
  std::printf(
      "RESULT label=%s format=%s streams=%zu connected=%zu connect_failed=%zu events=%zu "
      "posted=%zu "
      "post_failed=%zu rate=%.1f post_s=%.3f max_post_lag_ms=%.2f deliveries=%zu expected=%zu "
      "ended_early=%zu p50_ms=%.3f p99_ms=%.3f max_ms=%.3f deliveries_per_s=%.0f span_s=%.3f "
      "rss_idle_kib=%ld rss_streams_kib=%ld rss_end_kib=%ld rss_per_stream_bytes=%.0f "
      "connect_s=%.2f "
      "server_cpu_pct=%.0f load_cpu_pct=%.0f\n",
      o.label.empty() ? "-" : o.label.c_str(), o.publish_format.c_str(), o.streams, bench.connected,
      bench.connect_failed, o.events, bench.posted, bench.post_failed, o.rate, post_s,
      static_cast<double>(bench.max_post_lag_ns) / 1e6, bench.deliveries, expected,
      bench.ended_early, p50, p99, max, deliveries_per_s, span_s, rss_idle, rss_streams, rss_end,
      rss_per_stream_bytes, connect_s, server_cpu_pct, self_cpu_pct);
  std::fflush(stdout);
  const bool complete = bench.connected == o.streams && bench.post_failed == 0 &&
                        bench.posted == o.events && bench.deliveries == expected;
  co_return complete ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  raise_nofile_limit();
  Bench bench;
  bench.options = parse_options(argc, argv);
  const auto stream_url = parse_url(bench.options.stream_url);
  const auto publish_url = parse_url(bench.options.publish_url);
  if (!stream_url || !publish_url)
    usage(argv[0], "URLs must look like http://HOST:PORT/PATH");
  bench.stream_url = *stream_url;
  bench.publish_url = *publish_url;
  bench.latencies_ns.reserve(bench.options.streams * bench.options.events);

  asio::io_context io(1);
  try {
    tcp::resolver resolver(io);
    bench.stream_endpoint = *resolver.resolve(bench.stream_url.host, bench.stream_url.port).begin();
    bench.publish_endpoint =
        *resolver.resolve(bench.publish_url.host, bench.publish_url.port).begin();
  } catch (const std::exception& e) {
    std::cerr << "resolve: " << e.what() << "\n";
    return 1;
  }

  int status = 1;
  asio::co_spawn(io, run(bench), [&status, &io](std::exception_ptr error, int result) {
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        std::cerr << "sse_load: " << e.what() << "\n";
      }
    } else {
      status = result;
    }
    io.stop();
  });
  io.run();
  bench.sockets.clear();  // before the io_context that owns their registrations
  return status;
}
