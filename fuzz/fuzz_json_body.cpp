// Request bodies (gateway/json_codec.h): parse_json_object, required_string, optional_integer.
//
// The first input byte picks whether the body is optional and which bounds optional_integer
// gets; the rest is the body. For any bytes each helper either returns a value or throws ApiError
// 400 `malformed_json` with a message, never anything else, and:
//  - parse_json_object returns exactly Boost.JSON's parse of the body when that is an object (an
//    empty or all-whitespace optional body: the empty object);
//  - required_string returns the field's string, which is valid UTF-8, iff the field is a string;
//  - optional_integer returns the field's value iff it is an integer within the bounds (floats
//    refused even when whole) and nullopt iff the field is absent.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/session_types.h"
#include "core/text.h"
#include "gateway/json_codec.h"

namespace {

namespace json = boost::json;
using tau::gateway::ApiError;

std::string_view g_input;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_json_body: %s\nbody (%zu bytes): ", what.c_str(), g_input.size());
  std::fwrite(g_input.data(), 1, g_input.size(), stderr);
  std::fputc('\n', stderr);
  std::abort();
}

void expect_malformed(const ApiError& error, std::string_view field) {
  if (error.status() != 400 || error.code() != "malformed_json")
    fail("an ApiError other than 400 malformed_json: " + error.code());
  const std::string_view message = error.what();
  // what() is a C string, so a name with a NUL would be cut there; the gateway's own field names
  // have none (the fuzzer also asks for every key of the body).
  const bool nameable = !field.empty() && field.find('\0') == std::string_view::npos;
  if (nameable && message.find("'" + std::string(field) + "'") == std::string_view::npos)
    fail("the error message does not name the field: " + std::string(message));
  if (message.empty())
    fail("an error without a message");
}

bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    if (byte < 0x80) {
      ++i;
      continue;
    } else if ((byte & 0xE0) == 0xC0) {
      length = 2;
      code_point = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3;
      code_point = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4;
      code_point = byte & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size())
      return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80)
        return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    static constexpr std::uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kMinimum[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF))
      return false;
    i += length;
  }
  return true;
}

void check_string_field(const json::object& body, std::string_view field) {
  const json::value* value = body.if_contains(field);
  try {
    const std::string_view text = tau::gateway::required_string(body, field);
    if (value == nullptr || !value->is_string() || text != std::string_view(value->get_string()))
      fail("required_string returned something that is not the field's string");
    if (!valid_utf8(text))
      fail("required_string returned invalid UTF-8");
  } catch (const ApiError& error) {
    expect_malformed(error, field);
    if (value != nullptr && value->is_string())
      fail("required_string refused a string field");
  }
}

void check_integer_field(const json::object& body, std::string_view field, std::int64_t min,
                         std::int64_t max) {
  const json::value* value = body.if_contains(field);
  const bool in_range = value != nullptr && value->is_int64() && value->get_int64() >= min &&
                        value->get_int64() <= max;
  try {
    const auto number = tau::gateway::optional_integer(body, field, min, max);
    if (value == nullptr) {
      if (number)
        fail("optional_integer returned a value for an absent field");
    } else if (!number || !in_range || *number != value->get_int64()) {
      fail("optional_integer returned something that is not the field's in-range integer");
    }
  } catch (const ApiError& error) {
    expect_malformed(error, field);
    if (value == nullptr || in_range)
      fail("optional_integer refused an absent or in-range field");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0)
    return 0;
  const std::uint8_t mode = bytes[0];
  const std::string_view body(reinterpret_cast<const char*>(bytes + 1), size - 1);
  g_input = body;
  const bool body_optional = (mode & 1) != 0;

  json::object object;
  try {
    object = tau::gateway::parse_json_object(body, body_optional);
  } catch (const ApiError& error) {
    expect_malformed(error, "");
    boost::system::error_code ec;
    const json::value reference = json::parse(body, ec);
    if (!ec && reference.is_object())
      fail("parse_json_object refused an object");
    return 0;
  } catch (const std::exception& error) {
    fail(std::string("parse_json_object threw something other than ApiError: ") + error.what());
  }

  if (tau::core::trim_ascii_whitespace(body).empty()) {
    if (!body_optional || !object.empty())
      fail("an empty body was not the empty object");
  } else {
    boost::system::error_code ec;
    const json::value reference = json::parse(body, ec);
    // Compared as text: Boost.JSON 1.81 reads e.g. 0e400 as NaN, which equals nothing.
    if (ec || !reference.is_object() || json::serialize(reference) != json::serialize(object))
      fail("parse_json_object differs from Boost.JSON's parse");
  }

  // The fields the handlers read, then every field of the body (its keys may be anything).
  static constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
  static constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();
  const std::int64_t bounds[][2] = {
      {1, 1000000}, {0, kInt64Max}, {kInt64Min, kInt64Max}, {-1, -1}, {5, 4}};
  const auto& [min, max] = bounds[(mode >> 1) % std::size(bounds)];
  std::vector<std::string> fields = {"workspace_id", "message", "password", "limit", "now_unix_ms"};
  for (const auto& entry : object)
    fields.emplace_back(entry.key());
  try {
    for (const auto& field : fields) {
      check_string_field(object, field);
      check_integer_field(object, field, min, max);
    }
  } catch (const std::exception& error) {
    fail(std::string("a field helper threw something other than ApiError: ") + error.what());
  }
  return 0;
}
