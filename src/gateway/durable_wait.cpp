#include "gateway/durable_wait.h"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>
#include <memory>

namespace tau::gateway {

namespace asio = boost::asio;

asio::awaitable<bool> wait_until_durable(bridge::SessionService& sessions, store::Ticket ticket) {
  if (ticket == 0 || sessions.durable_ticket() >= ticket)
    co_return true;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
      [&sessions, ticket](auto handler) {
        // The store may call back on its writer thread: resume on the coroutine's own executor.
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        sessions.when_durable(ticket, [shared, executor](bool durable) {
          asio::post(executor, [shared, durable] { (*shared)(durable); });
        });
      },
      asio::use_awaitable);
}

bool block_until_durable(bridge::SessionService& sessions, store::Ticket ticket) {
  if (ticket == 0 || sessions.durable_ticket() >= ticket)
    return true;
  auto promise = std::make_shared<std::promise<bool>>();
  std::future<bool> durable = promise->get_future();
  sessions.when_durable(ticket, [promise](bool result) { promise->set_value(result); });
  return durable.get();
}

}  // namespace tau::gateway
