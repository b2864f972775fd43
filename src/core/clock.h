#pragma once

#include <cstdint>
#include <functional>

namespace tau::core {

// Milliseconds since the Unix epoch. Injected so timeouts are testable without sleeping.
using Clock = std::function<std::int64_t()>;
std::int64_t system_clock_unix_ms();

}  // namespace tau::core
