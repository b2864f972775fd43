#include "http/query.h"

#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
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

std::optional<RequestTarget> parse_request_target(std::string_view target) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed)
    return std::nullopt;
  const boost::urls::url_view& url = *parsed;
  RequestTarget result;
  // Split the path as written, one segment per '/'. Boost.URL's segments() would hide a leading
  // "/." (its escape for a path that starts with "//"), so "/./healthz" would route as "/healthz".
  const boost::urls::pct_string_view path = url.encoded_path();
  if (path != "/") {
    std::size_t start = 1;  // an origin-form path starts with '/'
    while (true) {
      const std::size_t slash = path.find('/', start);
      const std::size_t end = slash == boost::urls::string_view::npos ? path.size() : slash;
      result.path_segments.push_back(
          boost::urls::make_pct_string_view(path.substr(start, end - start))->decode());
      if (end == path.size())
        break;
      start = end + 1;
    }
  }
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
