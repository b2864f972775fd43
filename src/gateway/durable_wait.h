#pragma once

#include <boost/asio/awaitable.hpp>

#include "bridge/session_service.h"

namespace tau::gateway {

// Suspends the calling coroutine, without blocking its thread, until `ticket` is durable in
// `sessions`' store. Returns false if the store failed and it never will be. Ticket 0 (nothing
// written) is durable at once.
boost::asio::awaitable<bool> wait_until_durable(bridge::SessionService& sessions,
                                                store::Ticket ticket);

// The same, blocking the calling thread: for a thread that may wait (see BlockingCalls), never
// for an I/O thread.
bool block_until_durable(bridge::SessionService& sessions, store::Ticket ticket);

}  // namespace tau::gateway
