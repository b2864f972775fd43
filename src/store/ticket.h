#pragma once

#include <cstdint>

namespace tau::store {

// The position of a write in a store's journal: a write is durable once the store's durable
// ticket has reached its own.
using Ticket = std::uint64_t;

}  // namespace tau::store
