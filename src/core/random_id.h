#pragma once

#include <cstddef>
#include <string>

namespace tau::core {

// Hex of `bytes` bytes from the kernel's CSPRNG (getrandom). Used for session ids and auth
// tokens, which must be unguessable and never a counter.
std::string random_hex(std::size_t bytes);

// An opaque session id: a fixed prefix and 128 random bits.
std::string random_session_id();

}  // namespace tau::core
