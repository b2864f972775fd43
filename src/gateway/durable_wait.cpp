#include "gateway/durable_wait.h"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>

namespace tau::gateway {

namespace asio = boost::asio;

asio::awaitable<bool> wait_until_durable(store::SessionStore& store, store::Ticket ticket) {
  if (ticket == 0 || store.durable_ticket() >= ticket)
    co_return true;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
      [&store, ticket](auto handler) {
        // The store may call back on its writer thread: resume on the coroutine's own executor.
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        store.when_durable(ticket, [shared, executor](bool durable) {
          asio::post(executor, [shared, durable] { (*shared)(durable); });
        });
      },
      asio::use_awaitable);
}

}  // namespace tau::gateway
