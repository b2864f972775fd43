#pragma once

#include <boost/asio/awaitable.hpp>

#include "store/session_store.h"

namespace tau::gateway {

// Suspends the calling coroutine, without blocking its thread, until `ticket` is durable in
// `store`. Returns false if the store failed and it never will be. Ticket 0 (nothing written)
// is durable at once.
boost::asio::awaitable<bool> wait_until_durable(store::SessionStore& store, store::Ticket ticket);

}  // namespace tau::gateway
