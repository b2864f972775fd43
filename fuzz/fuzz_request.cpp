// The request path: raw bytes -> http::Server (Beast's parser) -> router -> GatewayApi handlers,
// against a gateway in this process.
//
// One http::Server listens on an ephemeral 127.0.0.1 port for the whole run; everything (server,
// handlers, this client) runs on one io_context driven from the fuzzing thread, so a run is
// deterministic. Each input gets a fresh gateway (memory store, localhost-dev auth, a fixed clock
// and session ids counting from eca_00000000000000000000000000000001, so seeds can name the
// sessions they open) and a fresh loopback connection: the input is written, the client's side is
// shut down, and the answer is read until the gateway closes.
//
// Invariants, for any bytes:
//  - the gateway closes the connection within kDeadline of the client's shutdown (no hang), and
//    every handler has returned by then;
//  - what it sent is a sequence of complete HTTP responses (only a cut-off event stream may end
//    early), each with a status from 100 to 599 and never 500 (a handler threw something
//    unexpected); a JSON response is valid JSON, an error (>= 400) is the documented envelope;
//  - every kHealthEvery inputs, a fresh connection still gets 200 from GET /healthz;
//  - the answers follow the requests as Beast's parser reads the input (empty lines before a
//    request skipped): the answer to a HEAD has no body (it is read as such, so body bytes would
//    break the answers after it), and a request that breaks RFC 9112's header rules (HTTP/1.1
//    without Host, two Hosts, a Transfer-Encoding other than exactly `chunked`) is answered
//    400 or 501 and nothing after it is answered;
//  - a request a browser rule refuses (a foreign Host or Origin, a body that is not JSON; see
//    browser_rule_broken) is never answered 2xx.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_pool.h"
#include "gateway/agent_sessions.h"
#include "gateway/config.h"
#include "gateway/event_stream.h"
#include "gateway/gateway_api.h"
#include "gateway/worker_supervisor.h"
#include "http/server.h"
#include "store/memory_store.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
namespace json = boost::json;
using asio::ip::tcp;
using namespace tau;

constexpr std::chrono::seconds kDeadline{5};
constexpr unsigned kHealthEvery = 16;
constexpr std::int64_t kNowUnixMs = 1764240000000;

gateway::GatewayConfig make_config() {
  gateway::GatewayConfig config;
  config.auth.mode = auth::AuthMode::localhost_dev;
  config.store.kind = gateway::StoreKind::memory;
  config.sessions.max_active = 4;
  config.sessions.max_events = 8;      // small, so retention gaps are reachable
  config.http.max_input_chars = 4096;  // bodies over 32 KiB: 413
  config.sse.heartbeat_ms = 1000;
  config.http.header_timeout_ms = 2000;
  config.http.body_timeout_ms = 2000;
  config.http.idle_timeout_ms = 2000;
  config.http.max_header_bytes = 2048;  // reachable with fuzzed inputs: 431 and 414
  config.http.max_target_bytes = 512;
  // Seeds name their Host 127.0.0.1 or x, with no port; one origin is answered with CORS, so
  // preflights and the CORS headers are reachable too.
  config.http.allowed_hosts = {"127.0.0.1", "x"};
  config.http.cors_origins = {"http://app.example"};
  return config;
}

// One gateway, as main.cpp assembles it, minus the disk, the real clock and random ids.
struct Gateway {
  Gateway(asio::io_context& io, std::uint16_t port)
      : store(std::make_shared<store::MemoryStore>()),
        pool(
            bridge::PoolLimits{config.sessions.inactivity_timeout_ms, config.sessions.max_active,
                               config.sessions.max_events,
                               config.sessions.retention_hours * 3600 * 1000,
                               config.sessions.max_event_memory_bytes},
            [] { return kNowUnixMs; },
            [this] {
              char id[40];
              std::snprintf(id, sizeof id, "eca_%032llx",
                            static_cast<unsigned long long>(++sessions_opened));
              return std::string(id);
            },
            gateway::encode_event_frame, store),
        authenticator(
            auth::AuthConfig{config.auth.mode, "", "", config.auth.session_ttl_seconds,
                             config.auth.authenticator().throttle},
            [] { return kNowUnixMs; }, std::make_shared<auth::LocalTokenRegistry>(store)),
        rate_limiter(config.auth.rate_limit_window_seconds, config.auth.rate_limit_max_requests,
                     [] { return kNowUnixMs; }),
        workers(io, pool, config),
        agents(io, pool, config),
        api(config, pool, authenticator, rate_limiter, workers, agents) {
    pool.set_end_listener(
        [this](const core::SessionSnapshot& session) { workers.on_session_end(session); });
    api.set_browser_policy(gateway::browser_policy(config, port));
    api.set_listening(true);
  }

  const gateway::GatewayConfig config = make_config();
  std::uint64_t sessions_opened = 0;
  std::shared_ptr<store::MemoryStore> store;
  bridge::SessionPool pool;
  auth::Authenticator authenticator;
  auth::LocalRateLimiter rate_limiter;
  gateway::WorkerSupervisor workers;
  gateway::AgentSessions agents;
  gateway::GatewayApi api;
};

struct Harness {
  asio::io_context io{1};
  std::unique_ptr<Gateway> gateway;
  unsigned active_handlers = 0;
  std::unique_ptr<http::Server> server;
  tcp::endpoint endpoint;
  unsigned inputs = 0;
  bool print_answers = false;  // FUZZ_REQUEST_PRINT=1: show what the gateway answered
};

Harness* harness = nullptr;

asio::awaitable<void> handle(http::Exchange& exchange) {
  ++harness->active_handlers;
  struct Done {
    ~Done() { --harness->active_handlers; }
  } done;
  co_await harness->gateway->api.handle(exchange);
}

[[noreturn]] void fail(const std::string& what, std::string_view input, std::string_view answer) {
  std::fprintf(stderr, "fuzz_request: %s\n--- input (%zu bytes):\n", what.c_str(), input.size());
  std::fwrite(input.data(), 1, input.size(), stderr);
  std::fprintf(stderr, "\n--- answer (%zu bytes):\n", answer.size());
  std::fwrite(answer.data(), 1, std::min<std::size_t>(answer.size(), 4096), stderr);
  std::fputc('\n', stderr);
  std::abort();
}

struct Conversation {
  std::string answer;
  bool connected = false;
  bool closed = false;     // the gateway closed its side (or reset the connection)
  bool timed_out = false;  // it did not within kDeadline
  unsigned running = 0;    // client coroutines not yet finished
};

// Owns its socket with the reader, so neither outlives it.
asio::awaitable<void> write_all(std::shared_ptr<tcp::socket> socket, std::string_view input,
                                Conversation& result) {
  beast::error_code ec;
  // The gateway may close before it read everything (e.g. after a 413): that is fine.
  co_await asio::async_write(*socket, asio::buffer(input.data(), input.size()),
                             asio::redirect_error(asio::use_awaitable, ec));
  socket->shutdown(tcp::socket::shutdown_send, ec);
  --result.running;
}

asio::awaitable<void> converse(std::string_view input, Conversation& result) {
  auto socket = std::make_shared<tcp::socket>(harness->io);
  beast::error_code ec;
  co_await socket->async_connect(harness->endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    --result.running;
    co_return;
  }
  result.connected = true;
  asio::steady_timer deadline(harness->io, kDeadline);
  deadline.async_wait([socket, &result](const beast::error_code& error) {
    if (!error && !result.closed) {
      result.timed_out = true;
      beast::error_code ignored;
      socket->close(ignored);
    }
  });
  // Written while reading, so a gateway answering a long pipeline never waits for this client.
  ++result.running;
  asio::co_spawn(harness->io, write_all(socket, input, result), asio::detached);
  char chunk[16384];
  while (true) {
    const std::size_t n = co_await socket->async_read_some(
        asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    result.answer.append(chunk, n);
    if (ec)
      break;
  }
  result.closed = !result.timed_out;
  deadline.cancel();
  socket->close(ec);  // also ends a write the gateway never read
  --result.running;
}

// Runs one exchange to its end: the client is done and no handler is still running.
Conversation run_conversation(std::string_view input) {
  Conversation result;
  result.running = 1;
  asio::co_spawn(harness->io, converse(input, result), asio::detached);
  while (result.running > 0 || harness->active_handlers > 0) {
    if (harness->io.run_one() == 0)
      break;  // nothing left to run: cannot happen while the acceptor is open
  }
  harness->io.poll();  // completions already queued (cancelled reads, posted wake-ups)
  if (result.running > 0 || harness->active_handlers > 0)
    fail("the io_context ran dry with the exchange unfinished", input, result.answer);
  return result;
}

// A request of the input as Beast's parser reads it, and what RFC 9112 says of its header.
struct InputRequest {
  bool head = false;            // a HEAD (also when its header is refused)
  bool breaks_framing = false;  // must be refused with 400 or 501, and end the connection
  // Something a browser rule refuses (docs/browser-protections.md), so it is never answered 2xx:
  // what it says, for the failure message.
  std::string foreign;
};

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// The rules, stated apart from the server's code: exactly one Host in HTTP/1.1, never two, and
// no Transfer-Encoding but `chunked` alone (empty list elements aside, as RFC 9110 section 5.6.1
// allows).
bool breaks_framing(const beast_http::request_header<>& header) {
  const std::size_t hosts = header.count(beast_http::field::host);
  if (hosts > 1 || (hosts == 0 && header.version() >= 11))
    return true;
  const auto [first, last] = header.equal_range(beast_http::field::transfer_encoding);
  if (first == last)
    return false;
  std::vector<std::string> codings;
  for (auto field = first; field != last; ++field) {
    const std::string value(field->value());
    std::size_t start = 0;
    while (start <= value.size()) {
      const std::size_t comma = std::min(value.find(',', start), value.size());
      std::size_t begin = start, end = comma;
      while (begin < end && is_ows(value[begin]))
        ++begin;
      while (end > begin && is_ows(value[end - 1]))
        --end;
      if (end > begin) {
        std::string coding = value.substr(begin, end - begin);
        for (char& c : coding)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        codings.push_back(std::move(coding));
      }
      start = comma + 1;
    }
  }
  return !(codings.size() == 1 && codings[0] == "chunked");
}

std::string lowercase(std::string_view text) {
  std::string lower(text);
  for (char& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// The name in `host[:port]`, or the whole of a bracketed IPv6 literal.
std::string host_name(std::string_view host) {
  if (host.starts_with('['))
    return std::string(host);
  return lowercase(host.substr(0, host.find(':')));
}

// The browser rules for make_config's gateway, stated apart from src/http/browser_policy.cpp and
// only where the answer is plain: a Host whose name is none the gateway answers to (its allowed
// 127.0.0.1 and x, localhost; IPv6 literals are left alone), an Origin whose host is none of
// those nor the listed app.example, or a body announced with a type other than JSON on anything
// but a CORS preflight. Each must never be answered 2xx.
std::string browser_rule_broken(const beast_http::request_header<>& header) {
  const auto is_known = [](const std::string& name) {
    return name == "127.0.0.1" || name == "x" || name == "localhost" || name.starts_with('[');
  };
  if (header.count(beast_http::field::host) == 1) {
    const std::string host(header[beast_http::field::host]);
    if (!host.empty() && !is_known(host_name(host)))
      return "a Host the gateway does not answer to";
  }
  const auto origins = header.count(beast_http::field::origin);
  if (origins > 1)
    return "two Origins";
  if (origins == 1) {
    const std::string origin = lowercase(std::string(header[beast_http::field::origin]));
    const auto scheme_end = origin.find("://");
    const std::string name =
        scheme_end == std::string::npos ? origin : host_name(origin.substr(scheme_end + 3));
    if (!is_known(name) && name != "app.example")
      return "an Origin the gateway does not answer to";
  }
  const bool announces_body = header.count(beast_http::field::transfer_encoding) > 0 ||
                              (header.count(beast_http::field::content_length) > 0 &&
                               header[beast_http::field::content_length] != "0");
  // A CORS preflight is answered (204) before the body's type is checked (the order of checks in
  // docs/browser-protections.md): it reaches no handler and reads no body, whatever it announces.
  const bool preflight = header.method() == beast_http::verb::options && origins == 1 &&
                         header.count(beast_http::field::access_control_request_method) > 0;
  if (announces_body && !preflight) {
    const auto types = header.count(beast_http::field::content_type);
    if (types == 0)
      return "a body without a Content-Type";
    const std::string type = lowercase(std::string(header[beast_http::field::content_type]));
    if (types == 1 && !type.starts_with("application/json"))
      return "a body that is not JSON";
  }
  return "";
}

// A body Beast parses (by Content-Length or chunks) and throws away, so that an input announcing
// a huge length costs nothing.
struct DiscardedBody {
  struct value_type {};
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(beast_http::header<isRequest, Fields>&, value_type&) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
    template <class Buffers>
    std::size_t put(const Buffers& buffers, beast::error_code& ec) {
      ec = {};
      return beast::buffer_bytes(buffers);
    }
    void finish(beast::error_code& ec) { ec = {}; }
  };
};

// The requests of the input, in order, as far as Beast's parser reads them: a gateway answers
// at most these, one answer each.
std::vector<InputRequest> input_requests(std::string_view input, std::size_t max_header_bytes) {
  std::vector<InputRequest> requests;
  while (true) {
    while (input.starts_with("\r\n"))
      input.remove_prefix(2);
    if (input.empty())
      break;
    const std::string_view request_start = input;
    beast_http::request_parser<DiscardedBody> parser;
    parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
    parser.body_limit(boost::none);
    beast::error_code ec;
    while (!parser.is_header_done() && !input.empty()) {
      const std::size_t used = parser.put(asio::buffer(input.data(), input.size()), ec);
      input.remove_prefix(used);
      if (ec && (ec != beast_http::error::need_more || used == 0))
        break;
    }
    InputRequest request;
    // A request line Beast did not get to parse (the server may stop earlier, on a bare LF,
    // than Beast here) is a HEAD when it begins as one.
    request.head = parser.get().target().empty() ? request_start.starts_with("HEAD ")
                                                 : parser.get().method() == beast_http::verb::head;
    if (!parser.is_header_done()) {
      requests.push_back(request);  // refused, or never complete: the last one either way
      break;
    }
    request.breaks_framing = breaks_framing(parser.get().base());
    request.foreign = browser_rule_broken(parser.get().base());
    requests.push_back(request);
    if (request.breaks_framing)
      break;
    parser.eager(true);
    while (!parser.is_done() && !input.empty()) {
      const std::size_t used = parser.put(asio::buffer(input.data(), input.size()), ec);
      input.remove_prefix(used);
      if (ec && (ec != beast_http::error::need_more || used == 0))
        break;
    }
    if (!parser.is_done())
      break;
  }
  return requests;
}

// Splits the answer into responses; fails on anything a conforming client could not read.
unsigned check_answer(std::string_view input, const Conversation& conversation,
                      const std::vector<InputRequest>& requests) {
  std::string_view rest = conversation.answer;
  unsigned responses = 0;
  while (!rest.empty()) {
    if (responses > 0 && responses <= requests.size() && requests[responses - 1].breaks_framing)
      fail("an answer after a request that breaks HTTP/1.1's framing", input, conversation.answer);
    beast_http::response_parser<beast_http::string_body> parser;
    parser.eager(true);
    parser.body_limit(boost::none);
    parser.header_limit(64 * 1024);
    const bool head = responses < requests.size() && requests[responses].head;
    if (head)
      parser.skip(true);
    beast::error_code ec;
    while (!parser.is_done() && !rest.empty()) {
      const std::size_t used = parser.put(asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(used);
      if (ec == beast_http::error::need_more) {
        ec = {};
        if (used == 0)
          break;  // an incomplete header
        continue;
      }
      if (ec)
        fail("the gateway sent bytes that are not an HTTP response: " + ec.message(), input,
             conversation.answer);
    }
    if (!parser.is_done()) {
      // Only an event stream may be cut off (a follow stream ends when the client leaves).
      const bool event_stream =
          parser.is_header_done() &&
          parser.get()[beast_http::field::content_type] == "text/event-stream";
      if (!event_stream)
        fail("the gateway's answer ends inside a response", input, conversation.answer);
      return responses + 1;
    }
    const bool breaks = responses < requests.size() && requests[responses].breaks_framing;
    const std::string foreign = responses < requests.size() ? requests[responses].foreign : "";
    ++responses;
    const auto& response = parser.get();
    const unsigned status = response.result_int();
    if (status < 100 || status > 599)
      fail("a status outside 100-599", input, conversation.answer);
    if (status == 500)
      fail("500: a handler threw something it should not have", input, conversation.answer);
    if (breaks && status != 400 && status != 501)
      fail("a request that breaks HTTP/1.1's framing was not refused", input, conversation.answer);
    if (!foreign.empty() && status >= 200 && status < 300)
      fail("a request with " + foreign + " was answered " + std::to_string(status), input,
           conversation.answer);
    if (head)
      continue;  // no body to check
    if (response[beast_http::field::content_type] == "application/json") {
      beast::error_code json_error;
      const json::value body = json::parse(response.body(), json_error);
      if (json_error || !body.is_object())
        fail("a JSON response whose body is not a JSON object", input, conversation.answer);
      if (status >= 400) {
        const auto* error = body.as_object().if_contains("error");
        if (error == nullptr || !error->is_object() || !error->as_object().contains("code") ||
            !error->as_object().contains("message"))
          fail("an error response without the error envelope", input, conversation.answer);
      }
    } else if (status >= 400) {
      fail("an error response that is not JSON", input, conversation.answer);
    }
  }
  return responses;
}

void check_health(std::string_view input) {
  static constexpr std::string_view kRequest =
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const Conversation conversation = run_conversation(kRequest);
  if (!conversation.connected || conversation.timed_out ||
      conversation.answer.rfind("HTTP/1.1 200 ", 0) != 0)
    fail("after this input GET /healthz no longer answers 200", input, conversation.answer);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::off);
  harness = new Harness;
  const char* print = std::getenv("FUZZ_REQUEST_PRINT");
  harness->print_answers = print != nullptr && std::string_view(print) == "1";
  // As main.cpp sets the server up, with short timeouts: this client never stalls on purpose.
  const gateway::GatewayConfig config = make_config();
  harness->server = std::make_unique<http::Server>(
      harness->io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), &handle,
      gateway::server_options(config));
  harness->endpoint = harness->server->local_endpoint();
  harness->server->start();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  harness->gateway = std::make_unique<Gateway>(harness->io, harness->endpoint.port());
  const Conversation conversation = run_conversation(input);
  if (!conversation.connected)
    fail("cannot connect to the gateway", input, "");
  if (conversation.timed_out)
    fail("the gateway did not close the connection within the deadline", input,
         conversation.answer);
  const unsigned responses = check_answer(
      input, conversation, input_requests(input, harness->gateway->config.http.max_header_bytes));
  if (harness->print_answers) {
    std::fprintf(stderr, "--- %u responses, %zu bytes:\n", responses, conversation.answer.size());
    std::fwrite(conversation.answer.data(), 1, conversation.answer.size(), stderr);
    std::fputc('\n', stderr);
  }
  if (++harness->inputs % kHealthEvery == 0)
    check_health(input);
  harness->gateway.reset();
  harness->io.poll();
  return 0;
}
