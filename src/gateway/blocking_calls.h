#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace tau::gateway {

// Where calls into a session service that may wait on the network (`calls_block()`) are made, so
// no I/O thread ever waits on them. With such a service it owns a few threads of its own; with
// one that never blocks (the in-process pool) it has none and `run` calls straight through, at
// no cost.
class BlockingCalls {
 public:
  static constexpr std::size_t kDefaultThreads = 8;

  explicit BlockingCalls(bool calls_block, std::size_t threads = kDefaultThreads) {
    if (calls_block)
      pool_.emplace(threads);
  }
  ~BlockingCalls() { join(); }
  BlockingCalls(const BlockingCalls&) = delete;
  BlockingCalls& operator=(const BlockingCalls&) = delete;

  // Whether calls leave the calling thread.
  bool hops() const { return pool_.has_value(); }

  // Calls `f()` and returns its result. With threads, `f` runs on one of them while the calling
  // coroutine waits without holding its thread, and the coroutine resumes on its own executor
  // (a connection's strand) before this returns; an exception `f` throws is rethrown only then.
  // `f` may refer to the caller's locals: they outlive the call.
  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F&>> run(F f);

  // The threads' executor, for work that needs no answer (nullopt when there are none).
  std::optional<boost::asio::thread_pool::executor_type> executor() {
    if (!pool_)
      return std::nullopt;
    return pool_->get_executor();
  }

  // Waits until every call handed to the threads has finished. Before anything those calls refer
  // to is destroyed (e.g. an io_context's suspended coroutines).
  void join() {
    if (pool_)
      pool_->join();
  }

 private:
  // A call's result or exception, carried from the pool thread back to the coroutine.
  template <class R>
  struct Outcome {
    std::optional<R> value;
    std::exception_ptr error;
    template <class F>
    void capture(F& f) {
      try {
        value.emplace(f());
      } catch (...) {
        error = std::current_exception();
      }
    }
    R take() {
      if (error)
        std::rethrow_exception(error);
      return std::move(*value);
    }
  };

  std::optional<boost::asio::thread_pool> pool_;
};

template <>
struct BlockingCalls::Outcome<void> {
  std::exception_ptr error;
  template <class F>
  void capture(F& f) {
    try {
      f();
    } catch (...) {
      error = std::current_exception();
    }
  }
  void take() const {
    if (error)
      std::rethrow_exception(error);
  }
};

template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> BlockingCalls::run(F f) {
  namespace asio = boost::asio;
  using Result = std::invoke_result_t<F&>;
  if (!pool_)
    co_return f();
  Outcome<Result> outcome;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [this, &f, &outcome](auto handler) {
        // The coroutine's own executor, kept busy (so its io_context does not run out of work)
        // until the answer is back on it.
        auto resume_on = asio::prefer(asio::get_associated_executor(handler),
                                      asio::execution::outstanding_work_t::tracked);
        asio::post(*pool_, [&f, &outcome, resume_on, handler = std::move(handler)]() mutable {
          outcome.capture(f);
          asio::post(resume_on, std::move(handler));
        });
      },
      asio::use_awaitable);
  co_return outcome.take();
}

}  // namespace tau::gateway
