// Request targets, decimal parameters and list cursors (http/query.h; GET /sessions' cursor).
//
// Checks, for any bytes:
//  - parse_request_target answers what Boost.URL's parse alone answers (its fast path for plain
//    paths changes nothing);
//  - parse_request_target accepts only origin-form targets (they start with '/'); an accepted
//    target has one path segment per '/' of its path ("/" alone has none), and query_value(name)
//    is the value of the first parameter of that name.
//  - parse_unsigned accepts exactly the non-empty strings of ASCII digits whose value fits in 64
//    bits, and its value printed with std::to_string is the input without leading zeros.
//  - a list cursor "<last_activity_unix_ms>.<session id>" as GET /sessions writes it
//    (gateway_api.cpp, list_sessions), percent-encoded into a query as a client would, comes back
//    from parse_request_target + query_value unchanged and is read back by the same steps
//    list_sessions takes (first '.', parse_unsigned, <= INT64_MAX, non-empty id) as the same
//    position. The input is also read as a cursor those steps must either accept or refuse.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/gateway_api.h"
#include "http/query.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "fuzz_query: %s\ninput (%zu bytes): ", what, input.size());
  std::fwrite(input.data(), 1, input.size(), stderr);
  std::fputc('\n', stderr);
  std::abort();
}

// The reference: digits only, accumulated with an explicit overflow check.
std::optional<std::uint64_t> reference_unsigned(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10)
      return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

void check_unsigned(std::string_view text) {
  const auto parsed = tau::http::parse_unsigned(text);
  if (parsed != reference_unsigned(text))
    fail("parse_unsigned disagrees with the reference", text);
  if (parsed) {
    const std::size_t first_nonzero = text.find_first_not_of('0');
    const std::string_view canonical =
        first_nonzero == std::string_view::npos ? "0" : text.substr(first_nonzero);
    if (std::to_string(*parsed) != canonical)
      fail("parse_unsigned does not round-trip through std::to_string", text);
  }
}

using Position = tau::bridge::ListQuery::Position;

// What list_sessions reads from ?cursor= (nullopt where it answers 400 invalid_cursor).
std::optional<Position> read_cursor(std::string_view text) {
  return tau::gateway::parse_list_cursor(text);
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0f]);
    }
  }
  return out;
}

bool same(const std::optional<tau::http::RequestTarget>& a,
          const std::optional<tau::http::RequestTarget>& b) {
  if (!a || !b)
    return !a && !b;
  return a->path_segments == b->path_segments && a->query == b->query;
}

void check_target(std::string_view text) {
  const auto target = tau::http::parse_request_target(text);
  if (!same(target, tau::http::parse_request_target_by_boost_url(text)))
    fail("the plain-path fast path disagrees with Boost.URL's parse", text);
  if (!target)
    return;
  if (text.empty() || text.front() != '/')
    fail("accepted a target that is not in origin form", text);
  const std::string_view path = text.substr(0, text.find('?'));
  std::size_t slashes = 0;
  for (char c : path)
    slashes += c == '/' ? 1 : 0;
  const std::size_t expected_segments = path == "/" ? 0 : slashes;
  if (target->path_segments.size() != expected_segments)
    fail("path segments are not one per '/'", text);
  for (const auto& [name, value] : target->query) {
    const auto found = target->query_value(name);
    if (!found)
      fail("query_value misses a parameter that is present", text);
    for (const auto& [first_name, first_value] : target->query) {
      if (first_name == name) {
        if (*found != first_value)
          fail("query_value is not the first value of its name", text);
        break;
      }
    }
  }
}

void check_cursor_round_trip(std::int64_t activity, std::string_view session_id,
                             std::string_view input) {
  if (session_id.empty())
    return;  // the pool's ids never are; list_sessions refuses an empty one
  const std::string cursor = std::to_string(activity) + "." + std::string(session_id);
  const std::string target =
      "/gateway/external-coding-agent/sessions?limit=1&cursor=" + percent_encode(cursor) +
      "&cursor=ignored";
  const auto parsed = tau::http::parse_request_target(target);
  if (!parsed)
    fail("a percent-encoded cursor made the target invalid", input);
  const auto value = parsed->query_value("cursor");
  if (!value || *value != cursor)
    fail("the cursor did not come back from the query unchanged", input);
  const auto position = read_cursor(*value);
  if (!position || position->last_activity_unix_ms != activity ||
      position->session_id != session_id)
    fail("a cursor list_sessions wrote does not read back as the same position", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  check_unsigned(input);
  check_target(input);
  // A cursor as a client may send it: accepted ones are re-written and read back alike.
  if (const auto position = read_cursor(input)) {
    check_unsigned(input.substr(0, input.find('.')));
    check_cursor_round_trip(position->last_activity_unix_ms, position->session_id, input);
  }

  FuzzedDataProvider provider(bytes, size);
  const auto activity =
      provider.ConsumeIntegralInRange<std::int64_t>(0, std::numeric_limits<std::int64_t>::max());
  check_cursor_round_trip(activity, provider.ConsumeRemainingBytesAsString(), input);
  return 0;
}
