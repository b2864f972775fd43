// append_load: append-path load generator for `make bench-append` (bench/run-append.sh).
//
// Opens --sessions sessions (POST /sessions, one workspace each), then runs --clients clients,
// spread round-robin over the sessions (with more sessions than clients, each client takes turns
// over its share, so that every session gets appends). Each client is one keep-alive HTTP/1.1
// connection that posts progress appends (POST /sessions/{id}/progress) back to back, one request
// in flight at a time. The first --warmup-s seconds are not counted; then, for --duration-s
// seconds, every response received is counted: 200s as appends (with their latency, from just
// before the request is written to the end of the response), anything else as an error by status.
//
// Output: one JSON object on a line on stdout and a human-readable line on stderr. Exit status 0
// if every request succeeded, 3 if any failed (the figures are still printed), 1 if the sessions
// could not be opened, 2 on bad options.
//
// --threads T runs T io_contexts, one per thread, each with its share of the clients (no
// locking: each thread keeps its own counters, merged at the end). C++20 coroutines.

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "process_stats.h"

using tau::bench::raise_nofile_limit;
using tau::bench::read_cpu_ticks;
using tau::bench::self_cpu_s;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kApi = "/gateway/external-coding-agent";

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t clients = 64;
  std::size_t sessions = 0;  // 0: as many as clients
  double duration_s = 10;
  double warmup_s = 2;
  std::string token;
  std::size_t message_bytes = 100;
  unsigned threads = 1;
  double request_timeout_s = 10;
  std::size_t open_concurrency = 16;
  std::string workspace_prefix = "append-bench";
  long pid = 0;
  std::string label;
};

// Counters of one thread; only that thread touches them until the threads are joined.
struct Stats {
  std::vector<std::int64_t> latencies_ns;              // of the 200s in the measured window
  std::uint64_t appends = 0;                           // 200s in the measured window
  std::map<unsigned, std::uint64_t> errors_by_status;  // non-200s in the measured window
  std::uint64_t transport_errors = 0;  // connect/write/read failures in the measured window
  std::uint64_t other_errors = 0;      // failures of any kind outside the measured window
  std::uint64_t requests = 0;          // responses received, whole run
  std::uint64_t reconnects = 0;
};

struct Shared {
  Options options;
  tcp::endpoint endpoint;
  std::string host_header;
  std::string body;
  std::vector<std::string> session_ids;
  Clock::time_point measure_start;
  Clock::time_point measure_end;
  Clock::time_point hard_deadline;  // in-flight requests are abandoned after this
  // Sampled on thread 0 at the window's edges.
  double self_cpu_start = -1;
  double self_cpu_end = -1;
  long server_ticks_start = -1;
  long server_ticks_end = -1;
  Clock::time_point sampled_start;
  Clock::time_point sampled_end;
};

// A message of exactly n bytes that needs no JSON escaping and no trimming.
std::string make_message(std::size_t n) {
  std::string message;
  message.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    message.push_back(static_cast<char>('a' + i % 26));
  return message;
}

template <class Body>
void set_common_headers(const Shared& shared, http::request<Body>& request) {
  request.set(http::field::host, shared.host_header);
  request.set(http::field::content_type, "application/json");
  if (!shared.options.token.empty())
    request.set(http::field::authorization, "Bearer " + shared.options.token);
  request.keep_alive(true);
}

// Prints the first few failures only; the rest are counted.
void report_failure(const std::string& what) {
  static std::atomic<int> reported{0};
  const int n = ++reported;
  if (n <= 5)
    std::cerr << "append_load: " << what << "\n";
  if (n == 6)
    std::cerr << "append_load: (further failures not shown)\n";
}

std::string one_line(std::string text) {
  if (text.size() > 300)
    text.resize(300);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

awaitable<void> sleep_for(std::chrono::steady_clock::duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(duration);
  co_await timer.async_wait(use_awaitable);
}

// Opens sessions next..count-1 (shared cursor) over one keep-alive connection.
awaitable<void> session_opener(Shared& shared, std::size_t& next, std::string& error) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  const auto timeout = std::chrono::duration<double>(shared.options.request_timeout_s);
  stream.expires_after(std::chrono::duration_cast<Clock::duration>(timeout));
  co_await stream.async_connect(shared.endpoint, use_awaitable);
  stream.socket().set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  const std::string target = std::string(kApi) + "/sessions";
  while (error.empty() && next < shared.session_ids.size()) {
    const std::size_t index = next++;
    http::request<http::string_body> request{http::verb::post, target, 11};
    set_common_headers(shared, request);
    request.body() = json::serialize(json::object{
        {"workspace_id", shared.options.workspace_prefix + "-" + std::to_string(index)}});
    request.prepare_payload();
    stream.expires_after(std::chrono::duration_cast<Clock::duration>(timeout));
    co_await http::async_write(stream, request, use_awaitable);
    http::response<http::string_body> response;
    co_await http::async_read(stream, buffer, response, use_awaitable);
    if (response.result() != http::status::ok) {
      error = "opening session " + std::to_string(index) + ": HTTP " +
              std::to_string(response.result_int()) + " " + one_line(response.body());
      co_return;
    }
    boost::system::error_code ec;
    const json::value reply = json::parse(response.body(), ec);
    const json::value* id = ec ? nullptr : reply.find_pointer("/session/session_id", ec);
    if (id == nullptr || !id->is_string()) {
      error = "opening session " + std::to_string(index) + ": no session.session_id in " +
              one_line(response.body());
      co_return;
    }
    shared.session_ids[index] = std::string(id->as_string());
    if (!response.keep_alive())
      throw std::runtime_error("the server closed the connection while opening sessions");
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

// One keep-alive connection posting appends back to back until the measured window ends.
// Client i of C posts to session i % S when there are no more sessions than clients (S <= C);
// otherwise it takes turns over sessions i, i + C, i + 2C, ... so that every session gets appends.
awaitable<void> client(Shared& shared, Stats& stats, std::size_t index) {
  auto executor = co_await asio::this_coro::executor;
  const std::size_t clients = shared.options.clients;
  const std::size_t sessions = shared.session_ids.size();
  std::vector<http::request<http::string_body>> requests;
  const std::size_t first = sessions <= clients ? index % sessions : index;
  const std::size_t step = sessions <= clients ? sessions : clients;
  for (std::size_t s = first; s < sessions; s += step) {
    auto& request = requests.emplace_back(
        http::verb::post, std::string(kApi) + "/sessions/" + shared.session_ids[s] + "/progress",
        11);
    set_common_headers(shared, request);
    request.body() = shared.body;
    request.prepare_payload();
  }
  std::size_t turn = 0;
  const auto timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(shared.options.request_timeout_s));

  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  // Counts a failure in the window it happened in.
  auto failed = [&](const std::string& what, Clock::time_point when) {
    if (when >= shared.measure_start && when < shared.measure_end)
      ++stats.transport_errors;
    else
      ++stats.other_errors;
    report_failure("client " + std::to_string(index) + ": " + what);
    stream.reset();
  };

  while (Clock::now() < shared.measure_end) {
    if (!stream) {
      stream.emplace(executor);
      buffer.clear();
      stream->expires_at(std::min(Clock::now() + timeout, shared.hard_deadline));
      auto [ec] = co_await stream->async_connect(shared.endpoint, asio::as_tuple(use_awaitable));
      if (ec) {
        failed("connect: " + ec.message(), Clock::now());
        co_await sleep_for(std::chrono::milliseconds(10));  // no busy loop on a refused connect
        continue;
      }
      stream->socket().set_option(tcp::no_delay(true));
      ++stats.reconnects;
    }
    const auto& request = requests[turn++ % requests.size()];
    const auto sent = Clock::now();
    stream->expires_at(std::min(sent + timeout, shared.hard_deadline));
    auto [write_ec, written] =
        co_await http::async_write(*stream, request, asio::as_tuple(use_awaitable));
    (void)written;
    if (write_ec) {
      failed("write: " + write_ec.message(), Clock::now());
      continue;
    }
    http::response<http::string_body> response;
    auto [read_ec, read] =
        co_await http::async_read(*stream, buffer, response, asio::as_tuple(use_awaitable));
    (void)read;
    const auto done = Clock::now();
    if (read_ec) {
      failed("read: " + read_ec.message(), done);
      continue;
    }
    ++stats.requests;
    const bool in_window = done >= shared.measure_start && done < shared.measure_end;
    if (response.result() == http::status::ok) {
      if (in_window) {
        ++stats.appends;
        stats.latencies_ns.push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(done - sent).count());
      }
    } else {
      if (in_window)
        ++stats.errors_by_status[response.result_int()];
      else
        ++stats.other_errors;
      report_failure("client " + std::to_string(index) + ": HTTP " +
                     std::to_string(response.result_int()) + " " + one_line(response.body()));
    }
    if (!response.keep_alive())
      stream.reset();
  }
  if (stream) {
    beast::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
}

// On thread 0: samples CPU use at the start and at the end of the measured window.
awaitable<void> sampler(Shared& shared) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_at(shared.measure_start);
  co_await timer.async_wait(use_awaitable);
  shared.sampled_start = Clock::now();
  shared.self_cpu_start = self_cpu_s();
  shared.server_ticks_start = read_cpu_ticks(shared.options.pid);
  timer.expires_at(shared.measure_end);
  co_await timer.async_wait(use_awaitable);
  shared.sampled_end = Clock::now();
  shared.self_cpu_end = self_cpu_s();
  shared.server_ticks_end = read_cpu_ticks(shared.options.pid);
}

// Rethrows nothing: logs an exception escaping a coroutine.
auto log_exception(const char* what) {
  return [what](std::exception_ptr error) {
    if (!error)
      return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::cerr << "append_load: " << what << ": " << e.what() << "\n";
    }
  };
}

double percentile_us(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty())
    return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1e3;
}

// One flat JSON object, fields in the order added.
class JsonLine {
 public:
  void add(std::string_view key, const std::string& raw_json) {
    text_ += text_.empty() ? "{" : ",";
    text_ += json::serialize(json::string(key));
    text_ += ":";
    text_ += raw_json;
  }
  void add(std::string_view key, std::uint64_t value) { add(key, std::to_string(value)); }
  void add(std::string_view key, double value, int decimals) {
    char number[64];
    std::snprintf(number, sizeof number, "%.*f", decimals, value);
    add(key, std::string(number));
  }
  std::string finish() const { return text_.empty() ? "{}" : text_ + "}"; }

 private:
  std::string text_;
};

int run(Shared& shared) {
  const Options& o = shared.options;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (unsigned i = 0; i < o.threads; ++i)
    contexts.push_back(std::make_unique<asio::io_context>(1));

  // Sessions first, on thread 0, a few connections at a time.
  const auto open_start = Clock::now();
  shared.session_ids.assign(o.sessions, "");
  std::size_t next = 0;
  std::string error;
  const std::size_t openers = std::min(o.open_concurrency, o.sessions);
  for (std::size_t i = 0; i < openers; ++i) {
    asio::co_spawn(*contexts[0], session_opener(shared, next, error),
                   [&error](std::exception_ptr e) {
                     if (!e)
                       return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       if (error.empty())
                         error = std::string("opening sessions: ") + ex.what();
                     }
                   });
  }
  contexts[0]->run();
  contexts[0]->restart();
  if (!error.empty()) {
    std::cerr << "append_load: " << error << "\n";
    return 1;
  }
  const double open_s = std::chrono::duration<double>(Clock::now() - open_start).count();
  std::vector<std::string> distinct = shared.session_ids;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  if (distinct.size() != shared.session_ids.size()) {
    std::cerr << "append_load: asked for " << shared.session_ids.size() << " sessions, got "
              << distinct.size() << " distinct ones\n";
    return 1;
  }

  // Then the clients. The window is fixed in advance; connecting happens during the warmup.
  const auto start = Clock::now();
  const auto as_clock = [](double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  shared.measure_start = start + as_clock(o.warmup_s);
  shared.measure_end = shared.measure_start + as_clock(o.duration_s);
  shared.hard_deadline = shared.measure_end + as_clock(o.request_timeout_s);

  std::vector<Stats> stats(o.threads);
  const double expected_per_thread = 200000.0 * o.duration_s / o.threads;  // a generous guess
  for (auto& s : stats)
    s.latencies_ns.reserve(static_cast<std::size_t>(std::min(expected_per_thread, 5e7)));
  for (std::size_t i = 0; i < o.clients; ++i) {
    const std::size_t t = i % o.threads;
    asio::co_spawn(*contexts[t], client(shared, stats[t], i), log_exception("client"));
  }
  asio::co_spawn(*contexts[0], sampler(shared), log_exception("sampler"));
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < o.threads; ++t)
    threads.emplace_back([&contexts, t] { contexts[t]->run(); });
  contexts[0]->run();
  for (auto& thread : threads)
    thread.join();

  // Merge.
  Stats total;
  for (auto& s : stats) {
    total.latencies_ns.insert(total.latencies_ns.end(), s.latencies_ns.begin(),
                              s.latencies_ns.end());
    total.appends += s.appends;
    for (const auto& [status, count] : s.errors_by_status)
      total.errors_by_status[status] += count;
    total.transport_errors += s.transport_errors;
    total.other_errors += s.other_errors;
    total.requests += s.requests;
    total.reconnects += s.reconnects;
  }
  std::sort(total.latencies_ns.begin(), total.latencies_ns.end());
  std::uint64_t errors = 0;
  json::object by_status;
  for (const auto& [status, count] : total.errors_by_status) {
    errors += count;
    by_status[std::to_string(status)] = count;
  }
  const double window_s = o.duration_s;
  const double appends_per_second = static_cast<double>(total.appends) / window_s;
  const double p50 = percentile_us(total.latencies_ns, 0.50);
  const double p99 = percentile_us(total.latencies_ns, 0.99);
  const double max =
      total.latencies_ns.empty() ? 0 : static_cast<double>(total.latencies_ns.back()) / 1e3;
  const double sampled_s =
      std::chrono::duration<double>(shared.sampled_end - shared.sampled_start).count();
  const double generator_cpu_pct =
      shared.self_cpu_end >= 0 && sampled_s > 0
          ? 100.0 * (shared.self_cpu_end - shared.self_cpu_start) / sampled_s
          : -1;
  const double server_cpu_pct =
      shared.server_ticks_start >= 0 && shared.server_ticks_end >= 0 && sampled_s > 0
          ? 100.0 * static_cast<double>(shared.server_ticks_end - shared.server_ticks_start) /
                static_cast<double>(sysconf(_SC_CLK_TCK)) / sampled_s
          : -1;

  // Numbers are written by hand: Boost.JSON would print doubles in exponent form (1.2E4).
  JsonLine line;
  line.add("label", json::serialize(json::string(o.label)));
  line.add("clients", o.clients);
  line.add("sessions", o.sessions);
  line.add("threads", o.threads);
  line.add("message_bytes", o.message_bytes);
  line.add("warmup_s", o.warmup_s, 3);
  line.add("duration_s", window_s, 3);
  line.add("appends", total.appends);
  line.add("appends_per_second", appends_per_second, 1);
  line.add("errors", errors);
  line.add("errors_by_status", json::serialize(by_status));
  line.add("transport_errors", total.transport_errors);
  line.add("errors_outside_window", total.other_errors);
  line.add("latency_p50_us", p50, 1);
  line.add("latency_p99_us", p99, 1);
  line.add("latency_max_us", max, 1);
  line.add("generator_cpu_pct", generator_cpu_pct, 1);
  line.add("server_cpu_pct", server_cpu_pct, 1);
  line.add("requests_total", total.requests);
  line.add("connects", total.reconnects);
  line.add("sessions_open_s", open_s, 3);
  std::cout << line.finish() << std::endl;

  std::fprintf(stderr,
               "append_load%s%s: %zu clients on %zu sessions, %u thread(s): %.0f appends/s over "
               "%.1f s (%llu errors, %llu transport errors, %llu outside the window); latency "
               "p50 %.0f us, p99 %.0f us, max %.0f us; CPU: generator %.0f%%, server %.0f%% of "
               "one core\n",
               o.label.empty() ? "" : " ", o.label.c_str(), o.clients, o.sessions, o.threads,
               appends_per_second, window_s, static_cast<unsigned long long>(errors),
               static_cast<unsigned long long>(total.transport_errors),
               static_cast<unsigned long long>(total.other_errors), p50, p99, max,
               generator_cpu_pct, server_cpu_pct);
  const bool clean = errors == 0 && total.transport_errors == 0 && total.other_errors == 0;
  return clean && total.appends > 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  Shared shared;
  Options& o = shared.options;
  CLI::App app{"append_load: progress-append load generator for tau-gateway (make bench-append)",
               "append_load"};
  app.add_option("--host", o.host, "gateway address")->capture_default_str();
  app.add_option("--port", o.port, "gateway port")->required();
  app.add_option("--clients", o.clients, "keep-alive connections, one request in flight each")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--sessions", o.sessions,
                 "sessions to open first; clients are spread round-robin (default: --clients)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  app.add_option("--duration-s", o.duration_s, "measured seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  app.add_option("--warmup-s", o.warmup_s, "seconds of load before measuring")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--token", o.token, "bearer token (default: none, for --auth-mode localhost-dev)");
  app.add_option("--message-bytes", o.message_bytes, "length of each progress message")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  app.add_option("--threads", o.threads, "generator threads")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  app.add_option("--request-timeout-s", o.request_timeout_s, "give up on one request after this")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  app.add_option("--open-concurrency", o.open_concurrency, "connections opening sessions")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  app.add_option("--workspace-prefix", o.workspace_prefix,
                 "session i uses workspace PREFIX-i (one running session per workspace)")
      ->capture_default_str();
  app.add_option("--pid", o.pid, "server process whose CPU use is reported (0: none)");
  app.add_option("--label", o.label, "copied into the output");
  CLI11_PARSE(app, argc, argv);
  if (o.sessions == 0)
    o.sessions = o.clients;

  raise_nofile_limit();
  shared.host_header = o.host + ":" + std::to_string(o.port);
  shared.body = json::serialize(json::object{{"message", make_message(o.message_bytes)}});
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    shared.endpoint = *resolver.resolve(o.host, std::to_string(o.port)).begin();
  } catch (const std::exception& e) {
    std::cerr << "append_load: resolve " << o.host << ": " << e.what() << "\n";
    return 1;
  }
  try {
    return run(shared);
  } catch (const std::exception& e) {
    std::cerr << "append_load: " << e.what() << "\n";
    return 1;
  }
}
