#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
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

  // A call the service answers without a thread of ours (e.g. Redis replies read by the client's
  // own reader): `start(done)` starts it and hands over `done`, which the service calls once, on
  // a thread of its own, with (exception_ptr, R); the coroutine resumes on its own executor with
  // the result, or the exception rethrown. nullopt when `start` returns false (the call was not
  // made: make it through run()). An exception `start` throws is rethrown as well. join() waits
  // for these calls too.
  template <class R>
  using Done = std::function<void(std::exception_ptr, R)>;
  template <class R, class Start>
  boost::asio::awaitable<std::optional<R>> run_without_thread(Start start);

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
    std::unique_lock lock(answers_mutex_);
    answers_done_.wait(lock, [this] { return awaiting_answers_ == 0; });
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

  void answer_expected() {
    std::lock_guard lock(answers_mutex_);
    ++awaiting_answers_;
  }
  void answer_handed_over() {
    {
      std::lock_guard lock(answers_mutex_);
      --awaiting_answers_;
    }
    answers_done_.notify_all();
  }

  std::optional<boost::asio::thread_pool> pool_;
  std::mutex answers_mutex_;
  std::condition_variable answers_done_;
  std::size_t awaiting_answers_ = 0;  // calls of run_without_thread not answered yet
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

template <class R, class Start>
boost::asio::awaitable<std::optional<R>> BlockingCalls::run_without_thread(Start start) {
  namespace asio = boost::asio;
  Outcome<R> outcome;
  bool made = true;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [this, &start, &outcome, &made](auto handler) {
        auto resume_on = asio::prefer(asio::get_associated_executor(handler),
                                      asio::execution::outstanding_work_t::tracked);
        // Shared, so that `done` can be a (copyable) std::function.
        auto waiting = std::make_shared<decltype(handler)>(std::move(handler));
        answer_expected();
        bool threw = false;
        try {
          made = start(
              // Moved along, never copied: once posted, only the coroutine holds the exception.
              // NOLINTNEXTLINE(performance-unnecessary-value-param)
              Done<R>([this, &outcome, resume_on, waiting](std::exception_ptr error, R value) {
                if (error)
                  outcome.error = std::move(error);
                else
                  outcome.value.emplace(std::move(value));
                asio::post(resume_on, std::move(*waiting));
                answer_handed_over();
              }));
        } catch (...) {
          outcome.error = std::current_exception();
          threw = true;
        }
        if (threw || !made) {
          // `done` will not be called: resume now.
          asio::post(resume_on, std::move(*waiting));
          answer_handed_over();
        }
      },
      asio::use_awaitable);
  if (!made && !outcome.error)
    co_return std::nullopt;
  co_return outcome.take();
}

}  // namespace tau::gateway
