#pragma once

#include <cstdint>
#include <optional>

namespace tau::worker {

// Limits set on the worker (soft and hard) before it is exec'd; unset ones are inherited.
struct ResourceLimits {
  std::optional<std::uint64_t> address_space_bytes;  // RLIMIT_AS
  std::optional<std::uint64_t> open_files;           // RLIMIT_NOFILE
  // RLIMIT_NPROC: counts every process of the worker's user, not only the worker's own, and
  // does not bind root.
  std::optional<std::uint64_t> processes;
};

}  // namespace tau::worker
