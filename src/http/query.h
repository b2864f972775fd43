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

// Nullopt when the target is not a valid origin-form target ("/path?query").
std::optional<RequestTarget> parse_request_target(std::string_view target);

// Parses a non-negative decimal integer: digits only, no sign or spaces, fits in 64 bits.
std::optional<std::uint64_t> parse_unsigned(std::string_view text);

}  // namespace tau::http
