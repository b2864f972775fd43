#include "http/query.h"

#include <boost/url/grammar/charset.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <cstdint>

namespace tau::http {

std::optional<std::string_view> RequestTarget::query_value(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name)
      return std::string_view(value);
  }
  return std::nullopt;
}

namespace {

// The path's segments as written, one per '/', each percent-decoded. Boost.URL's segments()
// would hide a leading "/." (its escape for a path that starts with "//"), so "/./healthz" would
// route as "/healthz". `path` is a valid origin-form path: it starts with '/' and every escape in
// it is whole.
std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> segments;
  if (path == "/")
    return segments;
  std::size_t start = 1;
  while (true) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view segment = path.substr(start, end - start);
    // A segment without an escape is its own decoding.
    if (segment.find('%') == std::string_view::npos)
      segments.emplace_back(segment);
    else
      segments.push_back(boost::urls::make_pct_string_view(segment)->decode());
    if (end == path.size())
      break;
    start = end + 1;
  }
  return segments;
}

// RFC 3986's pchar without '%' (unreserved, sub-delims, ':' and '@'), and '/'.
constexpr auto kPlainPathChars = boost::urls::pchars + '/';

}  // namespace

std::optional<RequestTarget> parse_request_target(std::string_view target) {
  // A path of plain characters and no query is origin-form as it stands (absolute-path is
  // 1*("/" segment), a segment any number of pchars), so most targets need no parse.
  if (!target.empty() && target.front() == '/' &&
      boost::urls::grammar::find_if_not(target.data(), target.data() + target.size(),
                                        kPlainPathChars) == target.data() + target.size()) {
    return RequestTarget{split_path(target), {}};
  }
  return parse_request_target_by_boost_url(target);
}

std::optional<RequestTarget> parse_request_target_by_boost_url(std::string_view target) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed)
    return std::nullopt;
  const boost::urls::url_view& url = *parsed;
  const boost::urls::pct_string_view path = url.encoded_path();
  RequestTarget result{split_path(std::string_view(path.data(), path.size())), {}};
  for (const auto& param : url.params()) {
    result.query.emplace_back(param.key, param.has_value ? param.value : std::string());
  }
  return result;
}

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

}  // namespace tau::http
