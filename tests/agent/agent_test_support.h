#pragma once

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "agent/agent_types.h"

namespace tau::agent::testing {

// A line the client wrote, as JSON (a line that is not an object fails the test).
inline boost::json::object line_json(const std::string& line) {
  boost::json::value value = boost::json::parse(line);
  EXPECT_TRUE(value.is_object()) << line;
  return value.is_object() ? value.get_object() : boost::json::object();
}

inline std::vector<std::string> event_types_of(const Output& out) {
  std::vector<std::string> types;
  for (const auto& event : out.events)
    types.push_back(event.event_type);
  return types;
}

// The only event of `type` in `out` (the test fails unless there is exactly one).
inline AgentEvent only_event(const Output& out, std::string_view type) {
  std::vector<AgentEvent> found;
  for (const auto& event : out.events) {
    if (event.event_type == type)
      found.push_back(event);
  }
  EXPECT_EQ(found.size(), 1u) << "events of type " << type;
  return found.empty() ? AgentEvent{} : found.front();
}

inline std::string serialized(const boost::json::value& value) {
  return boost::json::serialize(value);
}

}  // namespace tau::agent::testing
