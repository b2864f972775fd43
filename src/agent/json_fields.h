#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string_view>

// Lenient readers for fields of agent messages: a missing field and one of the wrong type read
// the same (absent), so each caller decides once what absence means.
namespace tau::agent::json_fields {

inline const boost::json::object* object_at(const boost::json::object& object,
                                            std::string_view key) {
  const auto* field = object.if_contains(key);
  return field ? field->if_object() : nullptr;
}

inline const boost::json::array* array_at(const boost::json::object& object, std::string_view key) {
  const auto* field = object.if_contains(key);
  return field ? field->if_array() : nullptr;
}

// The string at `key`, or `fallback` when there is none.
inline std::string_view string_at(const boost::json::object& object, std::string_view key,
                                  std::string_view fallback = {}) {
  const auto* field = object.if_contains(key);
  if (!field || !field->is_string())
    return fallback;
  return field->get_string();
}

// The value at `key`, or null.
inline boost::json::value value_at(const boost::json::object& object, std::string_view key) {
  const auto* field = object.if_contains(key);
  return field ? *field : boost::json::value(nullptr);
}

}  // namespace tau::agent::json_fields
