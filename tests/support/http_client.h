#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tau::test {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  // The header's value, or "" when absent.
  std::string header(const std::string& lower_case_name) const;
  // The body parsed as JSON; fails the test when it is not JSON.
  boost::json::value json() const;
  // The `error.code` of an error envelope, checking the envelope's shape on the way.
  std::string error_code() const;
};

// A Beast client speaking HTTP/1.1 to the gateway on loopback, one connection per request.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, std::string bearer_token = {})
      : port_(port), bearer_token_(std::move(bearer_token)) {}

  HttpResponse get(const std::string& target, const Headers& headers = {}) const;
  HttpResponse post(const std::string& target, const std::string& body,
                    const Headers& headers = {}) const;
  HttpResponse request(const std::string& method, const std::string& target,
                       std::optional<std::string> body, const Headers& headers = {}) const;
  // This client, connecting from another loopback address (any of 127.0.0.0/8), as another
  // machine would appear.
  HttpClient from_address(std::string source_address) const {
    HttpClient client = *this;
    client.source_address_ = std::move(source_address);
    return client;
  }

 private:
  std::uint16_t port_;
  std::string bearer_token_;
  std::string source_address_;  // empty: the system's choice
};

// Writes raw bytes to the gateway and returns everything it answers until it closes the
// connection (or `read_timeout_ms` of silence). For requests no well-behaved client would send.
std::string raw_exchange(std::uint16_t port, const std::string& bytes, int read_timeout_ms = 5000);

// One Server-Sent Events message, as a client's parser would dispatch it.
struct SseMessage {
  std::string id;  // this message's own id field (a browser would also carry the last one over)
  std::string event;
  std::string data;
  std::optional<std::int64_t> retry_ms;
};

// Parses an event-stream body following the WHATWG algorithm (field lines, multi-line data
// joined with LF, comments ignored, a blank line dispatches).
std::vector<SseMessage> parse_sse(const std::string& body);

// A streaming response read as it arrives, for follow streams that stay open. Reads block with a
// deadline, and a missed deadline fails the test by throwing, so nothing waits forever.
class SseStream {
 public:
  SseStream(std::uint16_t port, const std::string& target, const Headers& headers = {});
  ~SseStream();
  SseStream(const SseStream&) = delete;
  SseStream& operator=(const SseStream&) = delete;

  const HttpResponse& head() const { return head_; }
  // The next message, or a comment (returned with event ":" and the comment text as data).
  // Nullopt once the response has ended.
  std::optional<SseMessage> next(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Reads until the next message that is not a comment.
  std::optional<SseMessage> next_message(
      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Whether the response ended properly (last chunk received), as opposed to being cut off.
  bool completed() const;
  // Closes the connection from the client's side.
  void disconnect();

 private:
  struct Connection;
  std::unique_ptr<Connection> connection_;
  HttpResponse head_;
  std::string pending_;  // body text not yet split into messages
  bool ended_ = false;
};

// Frequently used paths.
inline const std::string kSessions = "/gateway/external-coding-agent/sessions";
inline std::string session_path(const std::string& session_id, const std::string& suffix = "") {
  return kSessions + "/" + session_id + suffix;
}
std::string json_body(const boost::json::object& fields);

// Opens (or reuses) the workspace's session, expecting 200, and returns its id.
std::string open_session(const HttpClient& client, const std::string& workspace_id);
// `gateway.external_coding_agent.runtime` of the status endpoint.
boost::json::value status_runtime(const HttpClient& client);
// The event frames of a session's replay-only stream (expecting 200), as a client sees them.
std::vector<SseMessage> replayed_events(const HttpClient& client, const std::string& session_id,
                                        const std::string& query = "", const Headers& headers = {});

}  // namespace tau::test
