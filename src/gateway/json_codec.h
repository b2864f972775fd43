#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bridge/session_service.h"
#include "gateway/api_error.h"

namespace tau::gateway {

// {"error":{"type":"invalid_request_error"|"server_error","code":...,"message":...}}
boost::json::object error_envelope(unsigned status, std::string_view code,
                                   std::string_view message);

boost::json::object to_json(const core::SessionSnapshot& session);
// The bytes boost::json::serialize writes for to_json(session) with "agent": `agent` appended
// (the session as answers show it), without building the object: the read path answers this
// many times per session. The field order is to_json's; a test holds the two to the same bytes.
void append_session_json(std::string& out, const core::SessionSnapshot& session,
                         const boost::json::value& agent);
boost::json::object to_json(const core::SessionEvent& event);
boost::json::object to_json(const bridge::RuntimeInfo& runtime);

// `text` as boost::json::serialize writes a JSON string (quoted and escaped), appended to `out`.
void append_json_string(std::string& out, std::string_view text);
// `value` in decimal, as JSON and the text log write integers, appended to `out`.
template <class Integer>
void append_integer(std::string& out, Integer value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

// Request bodies. Each throws ApiError 400 `malformed_json` with a message naming the problem.
// With `body_optional`, an empty (or all-whitespace) body is an empty object.
boost::json::object parse_json_object(std::string_view body, bool body_optional);
std::string_view required_string(const boost::json::object& body, std::string_view field);
// A string field; absent (or null) gives nullopt.
std::optional<std::string_view> optional_string(const boost::json::object& body,
                                                std::string_view field);
// An integer field within [min, max]; absent gives nullopt. Floats are refused even when whole.
std::optional<std::int64_t> optional_integer(const boost::json::object& body,
                                             std::string_view field, std::int64_t min,
                                             std::int64_t max);

}  // namespace tau::gateway
