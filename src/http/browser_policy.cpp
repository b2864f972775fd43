#include "http/browser_policy.h"

#include <algorithm>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/url/authority_view.hpp>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <iterator>
#include <stdexcept>

#include "http/query.h"

namespace tau::http {

namespace {

namespace urls = boost::urls;
using boost::beast::http::field;

constexpr std::string_view kLoopbackNames[] = {"localhost", "127.0.0.1", "[::1]"};

std::string_view view(urls::string_view text) {
  return {text.data(), text.size()};
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowercase(std::string_view text) {
  std::string result(text);
  std::transform(result.begin(), result.end(), result.begin(), lower);
  return result;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && is_ows(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back()))
    text.remove_suffix(1);
  return text;
}

// A header value as it may appear in a message: printable ASCII only, and not too long.
std::string printable(std::string_view text) {
  constexpr std::size_t kMaxShown = 100;
  std::string result;
  for (const char c : text.substr(0, kMaxShown)) {
    const auto byte = static_cast<unsigned char>(c);
    result.push_back(byte >= 0x20 && byte < 0x7f ? c : '?');
  }
  if (text.size() > kMaxShown)
    result += "...";
  return result;
}

// A host name as DNS has them: letters, digits, '.', '-' and '_' (no percent-encoding, none of
// the sub-delimiters RFC 3986 also allows in a reg-name).
bool is_dns_like(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

// A host and port in one canonical form, whether from a Host header, an --allowed-host value,
// the bind address or an origin: names lowercased, addresses as Boost.URL writes them.
struct Authority {
  std::string host;
  std::optional<std::uint16_t> port;
};

enum class Names { any_reg_name, dns_like };

std::optional<Authority> canonical(const urls::authority_view& authority, Names names) {
  if (authority.has_userinfo())
    return std::nullopt;
  Authority result;
  switch (authority.host_type()) {
    case urls::host_type::ipv4:
      result.host = authority.host_ipv4_address().to_string();
      break;
    case urls::host_type::ipv6:
      result.host = "[" + authority.host_ipv6_address().to_string() + "]";
      break;
    case urls::host_type::name: {
      const std::string_view name = view(authority.encoded_host());
      if (name.empty() || (names == Names::dns_like && !is_dns_like(name)))
        return std::nullopt;
      result.host = lowercase(name);
      break;
    }
    default:  // no host, or an IPvFuture literal
      return std::nullopt;
  }
  if (authority.has_port()) {
    // RFC 3986 allows an empty port and any number of digits; a Host must name a real port.
    const auto port = parse_unsigned(view(authority.port()));
    if (!port || *port == 0 || *port > 65535)
      return std::nullopt;
    result.port = static_cast<std::uint16_t>(*port);
  }
  return result;
}

std::optional<Authority> parse_host(std::string_view text, Names names) {
  const auto authority = urls::parse_authority(text);
  if (!authority)
    return std::nullopt;
  return canonical(*authority, names);
}

std::string to_string(const Authority& authority) {
  return authority.port ? authority.host + ":" + std::to_string(*authority.port) : authority.host;
}

std::optional<std::uint16_t> default_port(std::string_view scheme) {
  if (scheme == "http")
    return 80;
  if (scheme == "https")
    return 443;
  return std::nullopt;
}

struct Origin {
  std::string scheme;   // lowercased
  Authority authority;  // without the scheme's default port
};

std::optional<Origin> parse_origin(std::string_view value) {
  const auto url = urls::parse_absolute_uri(value);
  if (!url || !url->has_authority() || !url->encoded_path().empty() || url->has_query() ||
      url->has_fragment()) {
    return std::nullopt;
  }
  auto authority = canonical(url->authority(), Names::dns_like);
  if (!authority)
    return std::nullopt;
  Origin origin{lowercase(view(url->scheme())), std::move(*authority)};
  if (origin.authority.port && origin.authority.port == default_port(origin.scheme))
    origin.authority.port.reset();
  return origin;
}

std::string serialize(const Origin& origin) {
  return origin.scheme + "://" + to_string(origin.authority);
}

struct BindHost {
  Authority authority;  // without a port
  bool loopback = false;
  bool wildcard = false;
};

std::optional<BindHost> parse_bind_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  BindHost result;
  if (const auto v4 = urls::parse_ipv4_address(host)) {
    result.authority.host = v4->to_string();
    result.loopback = v4->is_loopback();
    result.wildcard = v4->is_unspecified();
  } else if (const auto v6 = urls::parse_ipv6_address(host)) {
    result.authority.host = "[" + v6->to_string() + "]";
    const auto bytes = v6->to_bytes();
    result.loopback = v6->is_loopback() || (v6->is_v4_mapped() && bytes[12] == 127);
    result.wildcard = v6->is_unspecified();
  } else if (is_dns_like(host)) {
    result.authority.host = lowercase(host);
    result.loopback = result.authority.host == "localhost";
  } else {
    return std::nullopt;
  }
  return result;
}

// Whether a request's Host matches an allowed entry. A Host without a port is the HTTP default,
// port 80 (the gateway speaks plain HTTP); an entry without a port matches any port, or none.
bool matches(std::string_view entry_host, std::optional<std::uint16_t> entry_port,
             const Authority& host) {
  return entry_host == host.host && (!entry_port || host.port.value_or(80) == *entry_port);
}

// The value of a header that may appear at most once: nullopt when absent, and `repeated` set
// when it appears more than once.
std::optional<std::string_view> single_value(const boost::beast::http::fields& fields, field name,
                                             bool& repeated) {
  const auto [first, last] = fields.equal_range(name);
  repeated = first != last && std::next(first) != last;
  if (first == last)
    return std::nullopt;
  return std::string_view(first->value().data(), first->value().size());
}

}  // namespace

std::optional<std::string> normalize_allowed_host(std::string_view value) {
  const auto authority = parse_host(value, Names::dns_like);
  if (!authority)
    return std::nullopt;
  return to_string(*authority);
}

std::optional<std::string> normalize_origin(std::string_view value) {
  const auto origin = parse_origin(value);
  if (!origin)
    return std::nullopt;
  return serialize(*origin);
}

std::string_view to_string(OriginVerdict verdict) {
  switch (verdict) {
    case OriginVerdict::no_origin:
      return "no_origin";
    case OriginVerdict::same_origin:
      return "same_origin";
    case OriginVerdict::cors_allowed:
      return "cors_allowed";
    case OriginVerdict::refused:
      return "refused";
  }
  return "refused";
}

BrowserPolicy BrowserPolicy::make(const BrowserPolicyOptions& options) {
  const auto bind = parse_bind_host(options.bind_host);
  if (!bind)
    throw std::invalid_argument("bind host '" + printable(options.bind_host) +
                                "' is not an address or a host name");
  if (options.bind_port == 0)
    throw std::invalid_argument("bind port must be the port listened on, not 0");

  BrowserPolicy policy;
  auto allow = [&policy](Authority entry) {
    const auto same = [&entry](const Entry& known) {
      return known.host == entry.host && known.port == entry.port;
    };
    if (std::none_of(policy.allowed_.begin(), policy.allowed_.end(), same)) {
      policy.allowed_host_names_.push_back(to_string(entry));
      policy.allowed_.push_back(Entry{std::move(entry.host), entry.port});
    }
  };
  // A wildcard address is not a name anyone should reach the gateway by (browsers that let
  // pages call http://0.0.0.0 made that a way around loopback checks), but a wildcard bind
  // listens on loopback too.
  if (!bind->wildcard)
    allow(Authority{bind->authority.host, options.bind_port});
  if (bind->loopback || bind->wildcard) {
    for (const auto name : kLoopbackNames)
      allow(Authority{std::string(name), options.bind_port});
  }
  for (const auto& value : options.allowed_hosts) {
    auto entry = parse_host(value, Names::dns_like);
    if (!entry)
      throw std::invalid_argument("allowed host '" + printable(value) +
                                  "' is not name, name:port, an address or [v6]:port");
    allow(std::move(*entry));
  }
  // Behind a load balancer the Host is whatever name clients use; a wildcard bind without a
  // list keeps those deployments working. Never in localhost-dev mode, where reaching the
  // listener is all it takes to get in.
  policy.any_host_ = bind->wildcard && options.allowed_hosts.empty() && !options.localhost_dev;
  for (const auto& value : options.cors_origins) {
    auto origin = normalize_origin(value);
    if (!origin)
      throw std::invalid_argument("CORS origin '" + printable(value) +
                                  "' is not scheme://host[:port]");
    if (std::find(policy.cors_origins_.begin(), policy.cors_origins_.end(), *origin) ==
        policy.cors_origins_.end()) {
      policy.cors_origins_.push_back(std::move(*origin));
    }
  }
  return policy;
}

std::optional<PolicyRefusal> BrowserPolicy::check_host(std::string_view host) const {
  if (host.empty()) {
    if (any_host_)
      return std::nullopt;
    return PolicyRefusal{421, "host_not_allowed",
                         "the request has no Host; this gateway answers only to its allowed "
                         "hosts (--allowed-host)"};
  }
  // Nearly every client names the gateway exactly as an entry is written ("127.0.0.1:8787",
  // "localhost:8787"); an entry's canonical text parses to that entry, so it needs no parse.
  if (std::find(allowed_host_names_.begin(), allowed_host_names_.end(), host) !=
      allowed_host_names_.end()) {
    return std::nullopt;
  }
  const auto authority = parse_host(host, Names::any_reg_name);
  if (!authority) {
    return PolicyRefusal{400, "malformed_request",
                         "the Host header '" + printable(host) + "' is not host[:port]"};
  }
  if (any_host_)
    return std::nullopt;
  for (const Entry& entry : allowed_) {
    if (matches(entry.host, entry.port, *authority))
      return std::nullopt;
  }
  return PolicyRefusal{
      421, "host_not_allowed",
      "the Host '" + printable(host) + "' is not an allowed host of this gateway (--allowed-host)"};
}

OriginCheck BrowserPolicy::check_origin(std::optional<std::string_view> origin,
                                        std::string_view host) const {
  if (!origin)
    return OriginCheck{};
  OriginCheck result{OriginVerdict::refused, std::string(*origin), std::nullopt};
  if (const auto parsed = parse_origin(*origin)) {
    // Same origin: the page was served by this gateway under the name the request uses. The
    // Host carries no scheme, so either http or https counts, on the same port (a Host without
    // a port has the scheme's default).
    if (const auto scheme_port = default_port(parsed->scheme)) {
      const auto request_host = parse_host(host, Names::any_reg_name);
      if (request_host && request_host->host == parsed->authority.host &&
          request_host->port.value_or(*scheme_port) ==
              parsed->authority.port.value_or(*scheme_port)) {
        result.verdict = OriginVerdict::same_origin;
        return result;
      }
    }
    if (std::find(cors_origins_.begin(), cors_origins_.end(), serialize(*parsed)) !=
        cors_origins_.end()) {
      result.verdict = OriginVerdict::cors_allowed;
      return result;
    }
  }
  result.refusal = PolicyRefusal{
      403, "origin_not_allowed",
      "the Origin '" + printable(*origin) + "' may not call this gateway (--cors-origin)"};
  return result;
}

std::optional<PolicyRefusal> BrowserPolicy::check_host(
    const boost::beast::http::request_header<>& header) const {
  bool repeated = false;
  const auto host = single_value(header, field::host, repeated);
  if (repeated)
    return PolicyRefusal{400, "malformed_request", "the request has more than one Host header"};
  return check_host(host.value_or(std::string_view()));
}

OriginCheck BrowserPolicy::check_origin(const boost::beast::http::request_header<>& header) const {
  bool repeated = false;
  const auto origin = single_value(header, field::origin, repeated);
  if (repeated) {
    return OriginCheck{
        OriginVerdict::refused, std::string(*origin),
        PolicyRefusal{403, "origin_not_allowed", "the request has more than one Origin header"}};
  }
  bool repeated_host = false;
  const auto host = single_value(header, field::host, repeated_host);
  return check_origin(origin, repeated_host ? std::string_view() : host.value_or(""));
}

std::string BrowserPolicy::describe() const {
  auto join = [](const std::vector<std::string>& items) {
    std::string text;
    for (const auto& item : items) {
      if (!text.empty())
        text += ", ";
      text += item;
    }
    return text.empty() ? std::string("none") : text;
  };
  return "allowed hosts: " + (any_host_ ? std::string("any") : join(allowed_host_names_)) +
         "; CORS origins: " + join(cors_origins_);
}

HeaderList cors_response_headers(std::string_view origin) {
  return HeaderList{{"Access-Control-Allow-Origin", std::string(origin)},
                    {"Vary", "Origin"},
                    {"Access-Control-Expose-Headers", "Retry-After"}};
}

PreflightAnswer cors_preflight_answer(std::string_view origin, std::string_view allowed_methods) {
  return PreflightAnswer{
      204, HeaderList{{"Access-Control-Allow-Origin", std::string(origin)},
                      {"Access-Control-Allow-Methods", std::string(allowed_methods)},
                      {"Access-Control-Allow-Headers", std::string(kCorsAllowedHeaders)},
                      {"Access-Control-Max-Age", std::string(kCorsMaxAgeSeconds)},
                      {"Vary", "Origin"}}};
}

bool is_cors_preflight(const boost::beast::http::request_header<>& header) {
  return header.method() == boost::beast::http::verb::options &&
         header.find(field::origin) != header.end() &&
         header.find(field::access_control_request_method) != header.end();
}

void apply_headers(const HeaderList& headers, boost::beast::http::header<false>& response) {
  for (const auto& [name, value] : headers)
    response.set(name, value);
}

// Where a parameter that Beast's param_list has just parsed ends in `text`. A token value is a
// view into `text`; a quoted-string value is handed out unquoted, from a buffer of its own, so
// its end is found after the name: OWS "=" OWS and the quoted string (already validated).
const char* parameter_end(std::string_view text, std::string_view name, std::string_view value) {
  const char* const text_end = text.data() + text.size();
  if (!value.empty() && value.data() >= text.data() && value.data() + value.size() <= text_end)
    return value.data() + value.size();
  const char* it = name.data() + name.size();
  auto skip_ows = [&] {
    while (it != text_end && is_ows(*it))
      ++it;
  };
  skip_ows();
  if (it == text_end || *it != '=')
    return name.data() + name.size();
  ++it;
  skip_ows();
  if (it == text_end || *it != '"')
    return name.data() + name.size();
  for (++it; it != text_end && *it != '"'; ++it) {
    if (*it == '\\' && it + 1 != text_end)
      ++it;
  }
  return it == text_end ? it : it + 1;
}

bool is_json_media_type(std::string_view content_type) {
  constexpr std::string_view kJson = "application/json";
  content_type = trim_ows(content_type);
  if (content_type.size() < kJson.size() || !iequals(content_type.substr(0, kJson.size()), kJson))
    return false;
  // What follows the type/subtype must be parameters (RFC 9110 8.3.1), every one of them: Beast's
  // param_list stops at the first one that is not well formed, so what it leaves must be blank.
  const std::string_view rest = content_type.substr(kJson.size());
  const char* parsed_end = rest.data();
  for (const auto& param : boost::beast::http::param_list(rest)) {
    const std::string_view name(param.first.data(), param.first.size());
    const std::string_view value(param.second.data(), param.second.size());
    parsed_end = parameter_end(rest, name, value);
    if (iequals(name, "charset")) {
      if (!iequals(value, "utf-8"))
        return false;
    }
  }
  return trim_ows(rest.substr(static_cast<std::size_t>(parsed_end - rest.data()))).empty();
}

bool announces_body(const boost::beast::http::request_header<>& header) {
  if (header.find(field::transfer_encoding) != header.end())
    return true;
  const auto length = header.find(field::content_length);
  if (length == header.end())
    return false;
  const auto bytes =
      parse_unsigned(trim_ows(std::string_view(length->value().data(), length->value().size())));
  return !bytes || *bytes != 0;
}

std::optional<PolicyRefusal> check_body_media_type(
    const boost::beast::http::request_header<>& header) {
  if (!announces_body(header))
    return std::nullopt;
  bool repeated = false;
  const auto content_type = single_value(header, field::content_type, repeated);
  if (content_type && !repeated && is_json_media_type(*content_type))
    return std::nullopt;
  std::string got = !content_type ? std::string("no Content-Type")
                    : repeated    ? std::string("more than one Content-Type")
                                  : "Content-Type '" + printable(*content_type) + "'";
  return PolicyRefusal{415, "unsupported_media_type",
                       "a request body must be application/json; got " + std::move(got)};
}

}  // namespace tau::http
