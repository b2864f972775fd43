#pragma once

#include <ostream>  // Boost 1.81 string_view.hpp uses std::ostream without including it

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tau::http {

// What keeps web pages out of an HTTP API that a browser can reach: which Host names it answers
// to (DNS rebinding), which Origins may call it (cross-site requests), the CORS answers for the
// origins it lists, and which request bodies it reads (no "simple" cross-site POSTs). Everything
// here is decided from raw header values; it knows nothing of routes, sessions or credentials.
// See docs/browser-protections.md.

// The answer to give instead of handling a request: an HTTP status, the API's error code and a
// message safe to show (no control characters, bounded length).
struct PolicyRefusal {
  unsigned status = 0;
  std::string code;
  std::string message;
};

// --- Configuration values (checked once, at start) ---------------------------------------------

// An --allowed-host value in canonical form, or nullopt when it is not one. Accepted: `name`,
// `name:port`, `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port`. Names are DNS-like
// ([A-Za-z0-9._-], lowercased); addresses are written canonically (`[0:0::1]` -> `[::1]`); the
// port is 1-65535 without leading zeros in the result. Without a port, the name matches any port.
std::optional<std::string> normalize_allowed_host(std::string_view value);

// A --cors-origin value as a serialized origin (what browsers send in `Origin`), or nullopt when
// it is not one: `scheme://host[:port]`, no userinfo, path (not even `/`), query or fragment;
// scheme and host lowercased, the default port dropped (80 for http, 443 for https); `null` is
// refused.
std::optional<std::string> normalize_origin(std::string_view value);

struct BrowserPolicyOptions {
  // The listening address as --bind gave it: an IPv4 or IPv6 literal (brackets optional) or a
  // name such as `localhost`.
  std::string bind_host;
  // The port actually listened on (not 0, which means "pick one" on the command line).
  std::uint16_t bind_port = 0;
  std::vector<std::string> allowed_hosts;  // --allowed-host values
  std::vector<std::string> cors_origins;   // --cors-origin values
  // localhost-dev mode lets anyone who reaches the listener in: it never accepts any Host.
  bool localhost_dev = false;
};

enum class OriginVerdict {
  no_origin,     // no Origin header: not a browser, or a same-origin GET
  same_origin,   // Origin is http(s)://<the request's Host>
  cors_allowed,  // Origin is listed in --cors-origin: answer it with CORS headers
  refused,       // anything else, including `null`: 403 origin_not_allowed
};

std::string_view to_string(OriginVerdict verdict);

struct OriginCheck {
  OriginVerdict verdict = OriginVerdict::no_origin;
  // The Origin value as sent, for Access-Control-Allow-Origin; empty without an Origin.
  std::string origin;
  // Set exactly when the verdict is `refused`.
  std::optional<PolicyRefusal> refusal;
};

// Built once from the configuration, then only read: safe to share between I/O threads.
class BrowserPolicy {
 public:
  // Throws std::invalid_argument, naming the value, when an option is not valid (the
  // configuration should have refused it already with normalize_allowed_host/normalize_origin),
  // or when bind_port is 0.
  static BrowserPolicy make(const BrowserPolicyOptions& options);

  // The Host header's value (empty when the request has none). Nullopt: allowed. Otherwise 400
  // malformed_request when the value is not `host[:port]`, 421 host_not_allowed when it is not
  // an allowed host.
  std::optional<PolicyRefusal> check_host(std::string_view host) const;

  // The Origin header's value (nullopt when absent) and the request's Host (already allowed).
  OriginCheck check_origin(std::optional<std::string_view> origin, std::string_view host) const;

  // The same checks on a parsed request header. A repeated Host answers 400, a repeated Origin
  // is refused.
  std::optional<PolicyRefusal> check_host(const boost::beast::http::request_header<>& header) const;
  OriginCheck check_origin(const boost::beast::http::request_header<>& header) const;

  // True when every Host is accepted (a wildcard bind without --allowed-host, not localhost-dev).
  bool accepts_any_host() const { return any_host_; }
  // The allowed hosts in canonical form (`name` or `name:port`), defaults first.
  const std::vector<std::string>& allowed_hosts() const { return allowed_host_names_; }
  // The listed origins, normalized.
  const std::vector<std::string>& cors_origins() const { return cors_origins_; }
  // One line for the start-up log: the allowed hosts and origins.
  std::string describe() const;

 private:
  struct Entry {
    std::string host;  // canonical: lowercased name, dotted IPv4, or bracketed canonical IPv6
    std::optional<std::uint16_t> port;
  };

  BrowserPolicy() = default;

  bool any_host_ = false;
  std::vector<Entry> allowed_;
  std::vector<std::string> allowed_host_names_;
  std::vector<std::string> cors_origins_;
};

// --- CORS answers for listed origins ------------------------------------------------------------

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The request headers a cross-origin caller may send (the preflight's
// Access-Control-Allow-Headers).
inline constexpr std::string_view kCorsAllowedHeaders =
    "Authorization, Content-Type, Last-Event-ID";
// How long a browser may cache a preflight answer, in seconds.
inline constexpr std::string_view kCorsMaxAgeSeconds = "600";

// Headers for every answer (success or error, JSON or event stream) to a request whose Origin is
// `cors_allowed`: Access-Control-Allow-Origin (the origin as sent), Vary: Origin, and
// Access-Control-Expose-Headers: Retry-After.
HeaderList cors_response_headers(std::string_view origin);

struct PreflightAnswer {
  unsigned status = 204;
  HeaderList headers;
};

// The answer to a preflight (see is_cors_preflight) from a `cors_allowed` origin for a path whose
// routes take `allowed_methods` (e.g. "GET, POST"): 204 with Access-Control-Allow-Origin,
// -Allow-Methods, -Allow-Headers (always kCorsAllowedHeaders, whatever was asked: the browser
// then refuses to send other headers itself), -Max-Age and Vary: Origin.
PreflightAnswer cors_preflight_answer(std::string_view origin, std::string_view allowed_methods);

// A CORS preflight: OPTIONS with an Origin and an Access-Control-Request-Method.
bool is_cors_preflight(const boost::beast::http::request_header<>& header);

// Sets each header on a response (replacing one of the same name).
void apply_headers(const HeaderList& headers, boost::beast::http::header<false>& response);

// --- Request bodies ----------------------------------------------------------------------------

// True for `application/json` with optional parameters (`; charset=utf-8`), case-insensitive,
// whitespace around the parts tolerated. A `charset` other than UTF-8 is refused (JSON is
// UTF-8). False for anything else: text/plain, forms, multipart, application/json-seq, empty.
bool is_json_media_type(std::string_view content_type);

// Whether a request header announces a body: a Content-Length other than 0, or any
// Transfer-Encoding.
bool announces_body(const boost::beast::http::request_header<>& header);

// 415 unsupported_media_type when the request announces a body (see announces_body) whose
// Content-Type (exactly one) is not JSON (see is_json_media_type). Nullopt otherwise.
std::optional<PolicyRefusal> check_body_media_type(
    const boost::beast::http::request_header<>& header);

}  // namespace tau::http
