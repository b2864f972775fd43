#include "http/server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/grammar/alpha_chars.hpp>
#include <boost/url/grammar/charset.hpp>
#include <boost/url/grammar/digit_chars.hpp>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <ctime>
#include <limits>
#include <vector>

#include "http/response_header.h"

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

using RequestParser = beast_http::request_parser<beast_http::string_body>;

// Whether the bytes Beast's parser holds back while it waits for more contain a LF without the
// CR before it. Beast looks for CRLF to end a header line or a chunk line and steps over a lone
// LF, so a request whose lines end in LF alone would wait, unanswered, for a timeout. While the
// parser needs more bytes, every byte it holds back is part of the header section or of a chunk
// line or the trailer (chunk data is consumed as it arrives), where RFC 9112 allows no bare LF:
// such a request is refused at once instead. The first byte held back follows a consumed line
// (or chunk data), so a LF there is bare too. `checked`: how many leading bytes an earlier call
// found clean (so a header that trickles in is scanned once, not once per read); updated.
bool holds_bare_lf(const beast::flat_buffer& buffer, std::size_t& checked) {
  const auto* bytes = static_cast<const char*>(buffer.data().data());
  const std::size_t size = buffer.size();
  for (std::size_t i = checked; i < size; ++i) {
    if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r'))
      return true;
  }
  checked = size;
  return false;
}

// Feeds Beast's parser from `buffer`, reading more from `stream` while it needs more, until
// `done(parser)`: what beast::http::async_read_header and async_read do (the same put() and
// put_eof() calls), plus the bare-LF check above whenever the parser asks for more bytes.
template <class Done>
asio::awaitable<beast::error_code> read_parsed(beast::tcp_stream& stream,
                                               beast::flat_buffer& buffer, RequestParser& parser,
                                               Done done) {
  beast::error_code ec;
  std::size_t checked = 0;  // for holds_bare_lf
  while (!done(parser)) {
    if (buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      checked = used < checked ? checked - used : 0;
      if (ec == beast_http::error::need_more) {
        if (holds_bare_lf(buffer, checked))
          co_return beast_http::error::bad_line_ending;
        ec = {};
      } else if (ec) {
        co_return ec;
      } else if (used > 0 || done(parser)) {
        continue;
      }
    }
    const std::size_t size = beast::read_size(buffer, 65536);
    if (size == 0)
      co_return beast_http::error::buffer_overflow;
    const std::size_t read = co_await stream.async_read_some(
        buffer.prepare(size), asio::redirect_error(use_awaitable, ec));
    buffer.commit(read);
    if (ec == asio::error::eof) {
      if (!parser.got_some())
        co_return beast_http::error::end_of_stream;
      ec = {};
      parser.put_eof(ec);  // partial_message unless the message ends with the connection
      co_return ec;
    }
    if (ec)
      co_return ec;
  }
  co_return ec;
}

// RFC 9112 section 2.2: a server SHOULD ignore at least one empty line (CRLF) before a request
// line (some clients send one after a POST body). Beast's parser would take its CR for a bad
// method, so empty lines are dropped from the buffer before the parser sees it, reading as long
// as nothing else has arrived. Returns the read's error (the peer left, or the timer fired).
asio::awaitable<beast::error_code> skip_empty_lines(beast::tcp_stream& stream,
                                                    beast::flat_buffer& buffer) {
  beast::error_code ec;
  while (true) {
    const auto* bytes = static_cast<const char*>(buffer.data().data());
    std::size_t empty = 0;
    while (empty + 1 < buffer.size() && bytes[empty] == '\r' && bytes[empty + 1] == '\n')
      empty += 2;
    buffer.consume(empty);
    // Anything but nothing or a lone CR (which may begin one more empty line) is for the parser.
    if (buffer.size() >= 2 ||
        (buffer.size() == 1 && *static_cast<const char*>(buffer.data().data()) != '\r'))
      co_return ec;
    const std::size_t read = co_await stream.async_read_some(
        buffer.prepare(beast::read_size(buffer, 65536)), asio::redirect_error(use_awaitable, ec));
    buffer.commit(read);
    if (ec)
      co_return ec;
  }
}

// Whether a request asks for HEAD, so that no answer to it may have a body: as Beast parsed its
// request line or, when it is refused before Beast parsed that line (Beast waits for the whole
// header once the first bytes did not hold the line, and a bare LF or the header limit can stop
// it first), as the line begins. Beast never leaves a parsed request's target empty.
bool asks_for_head(const RequestParser& parser, const beast::flat_buffer& buffer) {
  if (!parser.get().target().empty())
    return parser.get().method() == beast_http::verb::head;
  const std::string_view pending(static_cast<const char*>(buffer.data().data()), buffer.size());
  return pending.starts_with("HEAD ");
}

bool is_chunked(beast::string_view coding) {
  return beast::iequals(coding, "chunked");
}

// A Host value is uri-host [ ":" port ] (RFC 9112 section 3.2), which is an authority without
// userinfo. An empty one is allowed.
bool is_valid_host(beast::string_view value) {
  // The usual Host, a name or an IPv4 address and maybe ":digits", is an authority as it stands;
  // only the rest needs Boost.URL's parse. A name here is unreserved characters starting with a
  // letter: Boost.URL refuses a name that starts with an IPv4 address ("1.2.3.4.5"), and its
  // answer stays the rule.
  namespace urls = boost::urls;
  const char* const end = value.data() + value.size();
  const char* const past_host =
      urls::grammar::find_if_not(value.data(), end, urls::unreserved_chars);
  const std::string_view host(value.data(), static_cast<std::size_t>(past_host - value.data()));
  const bool plain_host =
      !host.empty() && (urls::grammar::alpha_chars(host.front()) || urls::parse_ipv4_address(host));
  if (plain_host &&
      (past_host == end ||
       (*past_host == ':' &&
        urls::grammar::find_if_not(past_host + 1, end, urls::grammar::digit_chars) == end))) {
    return true;
  }
  const auto authority = boost::urls::parse_authority(std::string_view(value.data(), value.size()));
  return authority && !authority->has_userinfo();
}

}  // namespace

std::optional<FramingRefusal> framing_refusal(const RequestHeader& header) {
  // RFC 9112 section 3.2: exactly one Host in HTTP/1.1 (HTTP/1.0 may omit it), never two, and a
  // valid one.
  const std::size_t hosts = header.count(beast_http::field::host);
  if (hosts > 1)
    return FramingRefusal{400, "malformed_request", "the request has more than one Host header"};
  if (hosts == 0 && header.version() >= 11)
    return FramingRefusal{400, "malformed_request", "an HTTP/1.1 request must have a Host header"};
  if (hosts == 1 && !is_valid_host(header[beast_http::field::host]))
    return FramingRefusal{400, "malformed_request", "the Host header is not a valid host[:port]"};

  // RFC 9112 section 6: the only transfer coding the gateway implements is chunked, so it must be
  // the only one. Beast frames the body as chunked when chunked is the last coding of the last
  // Transfer-Encoding line, and with no body otherwise (whose bytes would then be read as a
  // second request): both are refused here, before anything reads the body.
  std::vector<beast::string_view> codings;
  bool well_formed = true;
  const auto [first, last] = header.equal_range(beast_http::field::transfer_encoding);
  if (first == last)
    return std::nullopt;
  for (auto field = first; field != last; ++field) {
    const beast_http::opt_token_list list{field->value()};
    well_formed = well_formed && beast_http::validate_list(list);
    for (const auto coding : list)
      codings.push_back(coding);
  }
  if (!well_formed || codings.empty()) {
    return FramingRefusal{400, "malformed_request",
                          "Transfer-Encoding is not a list of transfer coding names"};
  }
  const auto chunked = std::count_if(codings.begin(), codings.end(), is_chunked);
  if (codings.size() == 1 && chunked == 1)
    return std::nullopt;
  if (chunked == 0 || (chunked == 1 && is_chunked(codings.back()))) {
    // Section 6.1: a coding the server does not understand.
    return FramingRefusal{501, "unsupported_transfer_coding",
                          "the only transfer coding supported is chunked, alone"};
  }
  // Section 6.3: chunked not last (or twice) leaves the body's length unknown.
  return FramingRefusal{400, "malformed_request",
                        "chunked must be the last transfer coding, and appear once"};
}

namespace {

// A request the server answers itself, before any handler, closing the connection after.
struct HeaderRefusal {
  unsigned version;
  unsigned status;
  std::string_view code;
  std::string message;
};

// What reading a request's header (ending in `ec`) leaves to refuse: a header over the limit,
// bytes that are not HTTP/1.1, framing RFC 9112 forbids, a target over the limit. A plain
// function: a connection's frame lives as long as the connection (for hours, under a follow
// stream), and g++ would give each refusal's temporaries a slot of their own in it.
std::optional<HeaderRefusal> header_refusal(const beast::error_code& ec,
                                            const RequestParser& parser,
                                            const ServerOptions& options) {
  if (ec == beast_http::error::header_limit) {
    return HeaderRefusal{
        11, 431, "header_too_large",
        "request header is larger than " + std::to_string(options.max_header_bytes) + " bytes"};
  }
  if (is_http_error(ec) && ec != beast_http::error::end_of_stream &&
      ec != beast_http::error::partial_message) {
    // Bytes that are not an HTTP/1.1 request header (duplicate Content-Length, a bad method or
    // version, a bare CR or LF): say so, then close, since the framing is lost.
    return HeaderRefusal{11, 400, "malformed_request",
                         "the request header is not valid HTTP/1.1: " + ec.message()};
  }
  if (ec)
    return std::nullopt;  // closed by the peer or timed out: no one to answer
  const unsigned version = parser.get().version();
  if (const auto refusal = framing_refusal(parser.get()))
    return HeaderRefusal{version, refusal->status, refusal->code, std::string(refusal->message)};
  if (parser.get().target().size() > options.max_target_bytes) {
    return HeaderRefusal{
        version, 414, "target_too_long",
        "request target is longer than " + std::to_string(options.max_target_bytes) + " bytes"};
  }
  return std::nullopt;
}

// Ends a connection politely. Closing while the client is still sending (the body of a request
// refused with 413, say) makes the kernel send a reset, which can destroy the answer before the
// client reads it. So: end our side, then read and discard what still comes, for a short while.
asio::awaitable<void> linger(beast::tcp_stream& stream) {
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

}  // namespace

Exchange::Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                   std::unique_ptr<Parser> parser, asio::ip::tcp::endpoint remote,
                   std::chrono::milliseconds body_timeout, std::atomic<std::size_t>& connections)
    : stream_(stream),
      buffer_(buffer),
      parser_(std::move(parser)),
      remote_(std::move(remote)),
      body_timeout_(body_timeout),
      head_(parser_->get().method() == beast_http::verb::head),
      keep_alive_(parser_->get().keep_alive()),
      connections_(connections) {}

std::shared_ptr<DetachedStream> Exchange::detach() {
  keep_alive_ = false;
  // The socket moves to a stream of its own; the connection's coroutine ends, and with it the
  // request's parser and read buffer (bytes the client sent after the request are dropped).
  detached_ = std::make_shared<DetachedStream>(std::move(stream_.socket()), write_timeout_, status_,
                                               body_bytes_, connections_);
  return detached_;
}

DetachedStream::DetachedStream(asio::ip::tcp::socket socket,
                               std::chrono::milliseconds write_timeout, unsigned status,
                               std::uint64_t body_bytes, std::atomic<std::size_t>& connections)
    : stream_(std::move(socket)),
      write_timeout_(write_timeout),
      status_(status),
      body_bytes_(body_bytes),
      connections_(connections) {
  ++connections_;
}

DetachedStream::~DetachedStream() {
  report_end();
  --connections_;
}

void DetachedStream::on_end(EndReport report) {
  if (ended_)
    report(status_, body_bytes_);
  else
    end_report_ = std::move(report);
}

void DetachedStream::report_end() {
  if (ended_)
    return;
  ended_ = true;
  if (end_report_)
    std::exchange(end_report_, nullptr)(status_, body_bytes_);
}

asio::awaitable<void> DetachedStream::linger_and_close(std::shared_ptr<DetachedStream> self) {
  co_await linger(self->stream_);
  self->stream_.close();
}

void DetachedStream::finish() {
  report_end();
  asio::co_spawn(executor(), linger_and_close(shared_from_this()), asio::detached);
}

asio::awaitable<std::optional<std::string>> Exchange::read_body(std::size_t limit) {
  Parser& parser = *parser_;
  if (const auto length = parser.content_length(); length && *length > limit) {
    keep_alive_ = false;
    co_return std::nullopt;
  }
  // A chunked body is checked against the limit as it arrives.
  parser.body_limit(limit);
  parser.eager(true);
  stream_.expires_after(body_timeout_);
  const beast::error_code ec = co_await read_parsed(
      stream_, buffer_, parser, [](const RequestParser& parser) { return parser.is_done(); });
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
  co_return std::move(parser.get().body());
}

void Exchange::prepare(beast_http::header<false>& response_header) {
  responded_ = true;
  // A body left unread would be parsed as the next request, so such a connection must close.
  if (!parser_->is_done())
    keep_alive_ = false;
  response_header.version(parser_->get().version());
  response_header.set(beast_http::field::server, "tau-gateway");
  response_header.set(beast_http::field::date, http_date());
  for (const auto& [name, value] : response_headers_)
    response_header.set(name, value);
  if (!keep_alive_)
    response_header.set(beast_http::field::connection, "close");
}

asio::awaitable<void> Exchange::send(StringResponse response) {
  prepare(response.base());
  response.keep_alive(keep_alive_);
  response.prepare_payload();
  status_ = response.result_int();
  body_bytes_ = head_ ? 0 : response.body().size();
  stream_.expires_never();
  // Beast's own async_write walks the header field by field as many small buffers, each step
  // through layers of buffer views; for the small answers that are most of the traffic that
  // walk cost more CPU than the answer itself. So the header is rendered in one pass into one
  // buffer (the bytes Beast would write), and header and body go out in one gather write.
  std::string head;
  head.reserve(256);
  render_response_header(response.base(), head);
  // A HEAD answer is the header alone, its Content-Length that of the body left out.
  const std::array<asio::const_buffer, 2> buffers{
      asio::buffer(head), asio::buffer(response.body().data(), head_ ? 0 : response.body().size())};
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
  if (data.empty() || head_)
    co_return;  // an empty chunk would end the body; a HEAD answer has none
  co_await write_with_timeout(beast_http::make_chunk(asio::buffer(data)));
  body_bytes_ += data.size();
}

asio::awaitable<void> Exchange::end_stream() {
  if (head_)
    co_return;
  co_await write_with_timeout(beast_http::make_chunk_last());
}

Server::Server(asio::io_context& io, const asio::ip::tcp::endpoint& endpoint,
               RequestHandler handler, ServerOptions options)
    : io_(io),
      acceptor_(asio::make_strand(io)),
      handler_(std::move(handler)),
      options_(std::move(options)) {
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
      // Between requests a keep-alive connection may idle (empty lines, which RFC 9112 lets a
      // client send before a request, included); once a request's first byte is in, its header
      // must be complete within the header timeout. A new connection has no idle allowance: it
      // was opened to send a request.
      stream.expires_after(first ? options_.header_timeout : options_.idle_timeout);
      ec = co_await skip_empty_lines(stream, buffer);
      if (ec)
        break;  // closed by the peer, or idle too long
      // On the heap, not in this frame: a parser is large, and g++ keeps a slot for every local.
      auto parser = std::make_unique<RequestParser>();
      // The body limit is applied by Exchange::read_body once the handler has chosen one.
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());
      parser->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
      if (!first)
        stream.expires_after(options_.header_timeout);
      ec = co_await read_parsed(stream, buffer, *parser, [](const RequestParser& parser) {
        return parser.is_header_done();
      });
      if (const auto refusal = header_refusal(ec, *parser, options_)) {
        co_await refuse(stream, refusal->version, asks_for_head(*parser, buffer), refusal->status,
                        refusal->code, refusal->message);
        break;
      }
      if (ec)
        break;  // closed by the peer or timed out: no one to answer
      // RFC 9112 section 6.1: an HTTP/1.0 message with a Transfer-Encoding has faulty framing
      // (HTTP/1.0 has none); it is answered, and the connection closes after.
      const bool faulty_framing = parser->get().version() < 11 &&
                                  parser->get().count(beast_http::field::transfer_encoding) > 0;
      Exchange exchange(stream, buffer, std::move(parser), remote, options_.body_timeout,
                        connections_);
      if (faulty_framing)
        exchange.close_after();
      co_await handler_(exchange);
      if (exchange.detached())
        co_return;  // the detached stream owns the connection now
      if (!exchange.responded() || !exchange.keep_alive())
        break;
    }
  } catch (const std::exception& error) {
    spdlog::debug("connection from {} ended: {}", remote.address().to_string(), error.what());
  }
  co_await linger(stream);
  stream.close();
}

asio::awaitable<void> Server::refuse(beast::tcp_stream& stream, unsigned version, bool head,
                                     unsigned status, std::string_view code,
                                     std::string_view message) const {
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
  beast_http::response_serializer<beast_http::string_body> serializer{response};
  if (head) {
    co_await beast_http::async_write_header(stream, serializer,
                                            asio::redirect_error(use_awaitable, ignored));
  } else {
    co_await beast_http::async_write(stream, serializer,
                                     asio::redirect_error(use_awaitable, ignored));
  }
}

}  // namespace tau::http
