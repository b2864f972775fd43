#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tau::http {

namespace beast_http = boost::beast::http;
using StringResponse = beast_http::response<beast_http::string_body>;
using RequestHeader = beast_http::request_header<>;

// Raised by Exchange::read_body when the body breaks HTTP's framing (a bad chunk, or the client
// ended its side of the connection before the body was complete): the answer is 400.
class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Why the server refuses a request whose header Beast parsed, before any handler sees it: the
// rules of RFC 9112 that Beast's parser leaves to its user. A missing (HTTP/1.1), repeated or
// invalid Host, or a Transfer-Encoding other than exactly `chunked`, is refused with 400
// `malformed_request`, or 501 `unsupported_transfer_coding` when chunked is absent or preceded
// by a coding the server does not implement; the connection closes after the answer.
struct FramingRefusal {
  unsigned status;
  std::string_view code;
  std::string_view message;
};
std::optional<FramingRefusal> framing_refusal(const RequestHeader& header);

// The rest of a chunked response that outlives its handler (a follow stream), written by
// callbacks: once the handler has returned, no coroutine frame of the request is kept while the
// stream idles, which for hours-long streams is most of their memory. It owns the connection,
// which still counts as open, until finish() has ended it politely (or until it is destroyed,
// which closes it at once). Use it from the connection's executor only, one write at a time.
class DetachedStream : public std::enable_shared_from_this<DetachedStream> {
 public:
  using EndReport = std::function<void(unsigned status, std::uint64_t body_bytes)>;

  DetachedStream(boost::asio::ip::tcp::socket socket, std::chrono::milliseconds write_timeout,
                 unsigned status, std::uint64_t body_bytes, std::atomic<std::size_t>& connections);
  ~DetachedStream();
  DetachedStream(const DetachedStream&) = delete;
  DetachedStream& operator=(const DetachedStream&) = delete;

  boost::asio::ip::tcp::socket& socket() { return stream_.socket(); }
  boost::asio::any_io_executor executor() { return stream_.get_executor(); }

  // Writes `data`, which must not be empty (an empty chunk ends the body), as one chunk of the
  // body, then calls `done(error)`. A write that cannot complete within the write timeout (the
  // peer stopped reading) closes the connection and fails.
  template <class Done>
  void write(std::string data, Done done) {
    pending_ = std::move(data);
    write_buffers(beast_http::make_chunk(boost::asio::buffer(pending_)), std::move(done));
  }
  // Ends the body (the last chunk), then calls `done(error)`.
  template <class Done>
  void end(Done done) {
    write_buffers(beast_http::make_chunk_last(), std::move(done));
  }

  // Called once the stream is over (finish(), or destruction) with its status and the body
  // bytes written by the exchange and here; at once if that has already happened.
  void on_end(EndReport report);
  // Ends the connection: our side shut, what the client still sends read and dropped for a
  // short while (so its last bytes are not lost to a reset), then closed.
  void finish();

 private:
  template <class Buffers, class Done>
  void write_buffers(const Buffers& buffers, Done done) {
    if (write_timeout_.count() > 0)
      stream_.expires_after(write_timeout_);
    boost::asio::async_write(
        stream_, buffers,
        [self = shared_from_this(), done = std::move(done)](const boost::system::error_code& error,
                                                            std::size_t /*written*/) mutable {
          self->stream_.expires_never();
          if (!error)
            self->body_bytes_ += self->pending_.size();
          // An idle stream keeps no buffer.
          std::string().swap(self->pending_);
          done(error);
        });
  }
  void report_end();
  static boost::asio::awaitable<void> linger_and_close(std::shared_ptr<DetachedStream> self);

  boost::beast::tcp_stream stream_;
  std::chrono::milliseconds write_timeout_;
  unsigned status_;
  std::uint64_t body_bytes_;
  std::atomic<std::size_t>& connections_;
  std::string pending_;  // the chunk being written
  EndReport end_report_;
  bool ended_ = false;
};

// One request/response exchange on a connection. The handler sees the header first and decides
// (route, auth, limits) before the body is read, so an unauthorized client cannot make the server
// read a large body. A handler sends exactly one response: a whole one, or a chunked stream.
class Exchange {
 public:
  using Parser = beast_http::request_parser<beast_http::string_body>;

  // `connections`: the server's count of open connections, which a detached stream stays in.
  Exchange(boost::beast::tcp_stream& stream, boost::beast::flat_buffer& buffer,
           std::unique_ptr<Parser> parser, boost::asio::ip::tcp::endpoint remote,
           std::chrono::milliseconds body_timeout, std::atomic<std::size_t>& connections);

  const RequestHeader& header() const { return parser_->get().base(); }
  // A HEAD request: its answer is the header a GET would get (Content-Length included), without
  // the body. send() and start_stream() leave the body out, and write_stream() and end_stream()
  // write nothing.
  bool is_head() const { return head_; }
  const boost::asio::ip::tcp::endpoint& remote() const { return remote_; }

  // Reads the body. Nullopt when it is larger than `limit` bytes; the body is then not read and
  // the connection closes after the response. A body that does not arrive within the body
  // timeout fails the exchange (the connection closes without an answer); a malformed one
  // throws BadRequest (and the connection closes after the answer).
  boost::asio::awaitable<std::optional<std::string>> read_body(std::size_t limit);

  boost::asio::awaitable<void> send(StringResponse response);

  // Starts a chunked response whose body is written piece by piece.
  boost::asio::awaitable<void> start_stream(beast_http::response<beast_http::empty_body> header);
  boost::asio::awaitable<void> write_stream(std::string data);
  // From now on, a stream write that cannot complete within `timeout` (the peer stopped
  // reading) closes the connection and throws.
  void set_write_timeout(std::chrono::milliseconds timeout) { write_timeout_ = timeout; }
  boost::asio::awaitable<void> end_stream();
  // Hands the connection to the rest of a started stream response (not HEAD), which goes on
  // after the handler returns: see DetachedStream. The exchange is then over: the handler returns
  // without writing, and the connection is not reused.
  std::shared_ptr<DetachedStream> detach();
  // The stream detach() handed the connection to, if any.
  const std::shared_ptr<DetachedStream>& detached() const { return detached_; }
  // The connection's socket, for a long-lived response that must notice the peer leaving or cut
  // a stalled peer off. Only touch it from the connection's strand.
  boost::asio::ip::tcp::socket& socket() { return stream_.socket(); }
  // The connection's executor (its strand).
  boost::asio::any_io_executor executor() const { return stream_.get_executor(); }
  // Closes the connection once this exchange ends instead of keeping it alive.
  void close_after() { keep_alive_ = false; }
  // A header the response carries whichever it is, success, error or stream (e.g. CORS headers
  // for a listed origin); set before responding.
  void add_response_header(std::string name, std::string value) {
    response_headers_.emplace_back(std::move(name), std::move(value));
  }

  bool responded() const { return responded_; }
  // The status sent (0 before a response) and the body bytes written so far, for logs and metrics.
  unsigned status() const { return status_; }
  std::uint64_t body_bytes() const { return body_bytes_; }
  // Whether the connection can serve another request after this exchange.
  bool keep_alive() const { return keep_alive_; }

 private:
  void prepare(beast_http::header<false>& response_header);
  boost::asio::awaitable<void> write_with_timeout(const auto& buffers);

  boost::beast::tcp_stream& stream_;
  boost::beast::flat_buffer& buffer_;
  std::unique_ptr<Parser> parser_;
  boost::asio::ip::tcp::endpoint remote_;
  std::chrono::milliseconds body_timeout_;
  std::chrono::milliseconds write_timeout_{0};  // 0: none
  bool head_ = false;
  bool responded_ = false;
  bool keep_alive_ = true;
  unsigned status_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::vector<std::pair<std::string, std::string>> response_headers_;
  std::atomic<std::size_t>& connections_;
  std::shared_ptr<DetachedStream> detached_;
};

using RequestHandler = std::function<boost::asio::awaitable<void>(Exchange&)>;

// Builds the answer to a request the server refuses before any handler sees it (431, 414, 400,
// 501).
using RefusalBuilder =
    std::function<StringResponse(unsigned status, std::string_view code, std::string_view message)>;

struct ServerOptions {
  // From a connection's first byte of a request to the end of its header.
  std::chrono::milliseconds header_timeout{10000};
  // From the end of the header to the end of the body.
  std::chrono::milliseconds body_timeout{30000};
  // How long a keep-alive connection may wait for its next request. Never applies while a
  // response (e.g. an open event stream) is being written.
  std::chrono::milliseconds idle_timeout{60000};
  std::size_t max_header_bytes = 16 * 1024;  // larger: 431
  std::size_t max_target_bytes = 8 * 1024;   // longer: 414
  // Connections beyond this are closed as soon as they are accepted; open ones are unaffected.
  std::size_t max_connections = 20000;
  RefusalBuilder refusal;  // default: an empty-bodied response
  // Whether each connection gets a strand. Only needed when several threads run the
  // io_context; with one, its handlers never overlap and a strand is pure cost (about 4 % of
  // the read path's CPU in a profile).
  bool connection_strands = true;
};

// Accepts connections and runs one coroutine per connection (on its own strand when several
// threads run the io_context; see ServerOptions::connection_strands). The handler is
// called once per request; the server owns parsing, keep-alive and the socket.
class Server {
 public:
  Server(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
         RequestHandler handler, ServerOptions options = {});

  boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  // Connections open now.
  std::size_t connections() const { return connections_.load(); }
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket);
  // Answers a request refused before its handler and closes the connection after. `head`: the
  // request is a HEAD, so the answer has no body.
  boost::asio::awaitable<void> refuse(boost::beast::tcp_stream& stream, unsigned version, bool head,
                                      unsigned status, std::string_view code,
                                      std::string_view message) const;

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  RequestHandler handler_;
  ServerOptions options_;
  std::atomic<std::size_t> connections_{0};
};

}  // namespace tau::http
