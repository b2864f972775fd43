#include "http/server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <ctime>
#include <limits>

namespace tau::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::use_awaitable;

namespace {

// The Date header (RFC 9110 section 6.6.1: an origin server with a clock sends one), formatted
// once per second per thread rather than once per response.
std::string_view http_date() {
  thread_local std::time_t formatted_second = -1;
  thread_local char text[32];
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != formatted_second) {
    std::tm utc{};
    gmtime_r(&now, &utc);
    length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    formatted_second = now;
  }
  return std::string_view(text, length);
}

// Errors of Beast's HTTP parser: the bytes received break HTTP/1.1.
bool is_http_error(const beast::error_code& ec) {
  return ec.category() == beast_http::make_error_code(beast_http::error::bad_method).category();
}
}  // namespace

Exchange::Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                   beast_http::request_parser<beast_http::string_body>& parser,
                   asio::ip::tcp::endpoint remote, std::chrono::milliseconds body_timeout)
    : stream_(stream),
      buffer_(buffer),
      parser_(parser),
      remote_(std::move(remote)),
      body_timeout_(body_timeout),
      keep_alive_(parser.get().keep_alive()) {}

asio::awaitable<std::optional<std::string>> Exchange::read_body(std::size_t limit) {
  if (const auto length = parser_.content_length(); length && *length > limit) {
    keep_alive_ = false;
    co_return std::nullopt;
  }
  // A chunked body is checked against the limit as it arrives.
  parser_.body_limit(limit);
  beast::error_code ec;
  stream_.expires_after(body_timeout_);
  co_await beast_http::async_read(stream_, buffer_, parser_,
                                  asio::redirect_error(use_awaitable, ec));
  // Handling the request may take a while (e.g. waiting for the store); no timer may run then.
  stream_.expires_never();
  if (ec == beast_http::error::body_limit) {
    keep_alive_ = false;
    co_return std::nullopt;
  }
  if (is_http_error(ec)) {
    keep_alive_ = false;
    throw BadRequest(ec == beast_http::error::partial_message
                         ? "the request body ended before its announced length"
                         : "the request body is not valid HTTP/1.1 framing: " + ec.message());
  }
  if (ec)
    throw beast::system_error(ec);
  co_return std::move(parser_.get().body());
}

void Exchange::prepare(beast_http::header<false>& response_header) {
  responded_ = true;
  // A body left unread would be parsed as the next request, so such a connection must close.
  if (!parser_.is_done())
    keep_alive_ = false;
  response_header.version(parser_.get().version());
  response_header.set(beast_http::field::server, "tau-gateway");
  response_header.set(beast_http::field::date, http_date());
  if (!keep_alive_)
    response_header.set(beast_http::field::connection, "close");
}

asio::awaitable<void> Exchange::send(StringResponse response) {
  prepare(response.base());
  response.keep_alive(keep_alive_);
  response.prepare_payload();
  status_ = response.result_int();
  body_bytes_ = response.body().size();
  stream_.expires_never();
  // Beast's own async_write walks the header field by field as many small buffers, each step
  // through layers of buffer views; for the small answers that are most of the traffic that
  // walk cost more CPU than the answer itself (about 10 % of the read path in a profile). So
  // Beast renders the header once into one buffer, and header and body go out in one gather
  // write.
  beast_http::response_serializer<beast_http::string_body> serializer{response};
  serializer.split(true);
  std::string head;
  beast::error_code ec;
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
      const std::size_t size = beast::buffer_bytes(buffers);
      const std::size_t at = head.size();
      head.resize(at + size);
      asio::buffer_copy(asio::buffer(head.data() + at, size), buffers);
      serializer.consume(size);
    });
  }
  if (ec)
    throw beast::system_error(ec);
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head),
                                                  asio::buffer(response.body())};
  co_await asio::async_write(stream_, buffers, use_awaitable);
}

asio::awaitable<void> Exchange::start_stream(beast_http::response<beast_http::empty_body> header) {
  prepare(header.base());
  header.keep_alive(keep_alive_);
  header.chunked(true);
  status_ = header.result_int();
  stream_.expires_never();
  beast_http::response_serializer<beast_http::empty_body> serializer{header};
  co_await beast_http::async_write_header(stream_, serializer, use_awaitable);
}

asio::awaitable<void> Exchange::write_with_timeout(const auto& buffers) {
  if (write_timeout_.count() > 0)
    stream_.expires_after(write_timeout_);
  co_await asio::async_write(stream_, buffers, use_awaitable);
  stream_.expires_never();
}

asio::awaitable<void> Exchange::write_stream(std::string data) {
  if (data.empty())
    co_return;  // an empty chunk would end the body
  co_await write_with_timeout(beast_http::make_chunk(asio::buffer(data)));
  body_bytes_ += data.size();
}

asio::awaitable<void> Exchange::end_stream() {
  co_await write_with_timeout(beast_http::make_chunk_last());
}

Server::Server(asio::io_context& io, const asio::ip::tcp::endpoint& endpoint,
               RequestHandler handler, ServerOptions options)
    : io_(io), acceptor_(asio::make_strand(io)), handler_(std::move(handler)), options_(options) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
}

void Server::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

void Server::stop() {
  // The acceptor is not thread-safe: close it on the strand its accept loop runs on.
  asio::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
}

asio::awaitable<void> Server::accept_loop() {
  while (acceptor_.is_open()) {
    beast::error_code ec;
    const asio::any_io_executor connection_executor =
        options_.connection_strands ? asio::any_io_executor(asio::make_strand(io_))
                                    : asio::any_io_executor(io_.get_executor());
    asio::ip::tcp::socket socket = co_await acceptor_.async_accept(
        connection_executor, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted)
        co_return;
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    if (connections_.load() >= options_.max_connections) {
      // Closed at once: the client sees a reset or an EOF, open connections keep working.
      socket.close(ec);
      continue;
    }
    ++connections_;
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_connection(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> Server::serve_connection(asio::ip::tcp::socket socket) {
  struct Counted {
    std::atomic<std::size_t>& connections;
    ~Counted() { --connections; }
  } counted{connections_};
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  try {
    for (bool first = true;; first = false) {
      // Between requests a keep-alive connection may idle; once a request's first byte is in,
      // its header must be complete within the header timeout. A new connection has no idle
      // allowance: it was opened to send a request.
      if (!first && buffer.size() == 0) {
        stream.expires_after(options_.idle_timeout);
        const std::size_t read = co_await stream.async_read_some(
            buffer.prepare(1024), asio::redirect_error(use_awaitable, ec));
        if (ec)
          break;  // closed by the peer, or idle too long
        buffer.commit(read);
      }
      beast_http::request_parser<beast_http::string_body> parser;
      // The body limit is applied by Exchange::read_body once the handler has chosen one.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
      stream.expires_after(options_.header_timeout);
      co_await beast_http::async_read_header(stream, buffer, parser,
                                             asio::redirect_error(use_awaitable, ec));
      if (ec == beast_http::error::header_limit) {
        co_await refuse(stream, 11, 431, "header_too_large",
                        "request header is larger than " +
                            std::to_string(options_.max_header_bytes) + " bytes");
        break;
      }
      if (is_http_error(ec) && ec != beast_http::error::end_of_stream &&
          ec != beast_http::error::partial_message) {
        // Bytes that are not an HTTP/1.1 request header (duplicate Content-Length, a bad
        // method or version, a bare CR): say so, then close, since the framing is lost.
        co_await refuse(stream, 11, 400, "malformed_request",
                        "the request header is not valid HTTP/1.1: " + ec.message());
        break;
      }
      if (ec)
        break;  // closed by the peer or timed out: no one to answer
      if (parser.get().target().size() > options_.max_target_bytes) {
        co_await refuse(stream, parser.get().version(), 414, "target_too_long",
                        "request target is longer than " +
                            std::to_string(options_.max_target_bytes) + " bytes");
        break;
      }
      Exchange exchange(stream, buffer, parser, remote, options_.body_timeout);
      co_await handler_(exchange);
      if (!exchange.responded() || !exchange.keep_alive())
        break;
    }
  } catch (const std::exception& error) {
    spdlog::debug("connection from {} ended: {}", remote.address().to_string(), error.what());
  }
  co_await linger(stream);
  stream.close();
}

asio::awaitable<void> Server::linger(beast::tcp_stream& stream) {
  // Closing while the client is still sending (the body of a request refused with 413, say)
  // makes the kernel send a reset, which can destroy the answer before the client reads it.
  // So: end our side, then read and discard what still comes, for a short while.
  constexpr auto kLingerTime = std::chrono::seconds(2);
  constexpr std::size_t kLingerBytes = 64 * 1024 * 1024;
  beast::error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec)
    co_return;  // already closed (e.g. by a timeout)
  stream.expires_after(kLingerTime);
  std::array<char, 4096> discard;  // in this short-lived frame only
  for (std::size_t total = 0; total < kLingerBytes;) {
    const std::size_t read = co_await stream.async_read_some(
        asio::buffer(discard), asio::redirect_error(use_awaitable, ec));
    if (ec)
      break;
    total += read;
  }
}

asio::awaitable<void> Server::refuse(beast::tcp_stream& stream, unsigned version, unsigned status,
                                     std::string_view code, std::string_view message) {
  StringResponse response = options_.refusal
                                ? options_.refusal(status, code, message)
                                : StringResponse{static_cast<beast_http::status>(status), 11};
  response.version(version == 10 ? 10 : 11);
  response.set(beast_http::field::server, "tau-gateway");
  response.set(beast_http::field::date, http_date());
  response.keep_alive(false);
  response.prepare_payload();
  // A client that does not read its answer must not hold the connection either.
  stream.expires_after(options_.header_timeout);
  beast::error_code ignored;
  co_await beast_http::async_write(stream, response, asio::redirect_error(use_awaitable, ignored));
}

}  // namespace tau::http
