#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tau::http {

// A request target in origin form, decoded by Boost.URL.
struct RequestTarget {
  std::vector<std::string> path_segments;                  // percent-decoded, one per '/'
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order

  // The first value of a query parameter, if present.
  std::optional<std::string_view> query_value(std::string_view name) const;
};

// Nullopt when the target is not a valid origin-form target ("/path?query"). A plain path (no
// escape, no query) is split as it stands; any other target is parsed by Boost.URL.
std::optional<RequestTarget> parse_request_target(std::string_view target);
// The same answer from Boost.URL's parse for every target: the reference the fast path of
// parse_request_target is tested and fuzzed against.
std::optional<RequestTarget> parse_request_target_by_boost_url(std::string_view target);

// Parses a non-negative decimal integer: digits only, no sign or spaces, fits in 64 bits.
std::optional<std::uint64_t> parse_unsigned(std::string_view text);

}  // namespace tau::http
