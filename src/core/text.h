#pragma once

#include <string_view>

namespace tau::core {

// Strips ASCII whitespace from both ends.
std::string_view trim_ascii_whitespace(std::string_view text);

}  // namespace tau::core
