#include "core/clock.h"

#include <chrono>

namespace tau::core {

std::int64_t system_clock_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace tau::core
