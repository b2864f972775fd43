// BlockingCalls: without threads a call runs in place; with them it runs on one of them, and the
// caller resumes on its own executor (a strand) before it sees the result or the exception.
#include "gateway/blocking_calls.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tau::gateway {
namespace {

namespace asio = boost::asio;

// Runs `body` as a coroutine on a strand of an io_context served by two threads, to its end.
template <class Body>
void run_on_strand(Body body) {
  asio::io_context io(2);
  auto strand = asio::make_strand(io);
  std::exception_ptr failure;
  asio::co_spawn(strand, body(io, strand),
                 [&failure](std::exception_ptr error) { failure = error; });
  std::thread other([&io] { io.run(); });
  io.run();
  other.join();
  if (failure)
    std::rethrow_exception(failure);
}

TEST(BlockingCalls, WithoutThreadsCallsInPlace) {
  BlockingCalls calls(false);
  EXPECT_FALSE(calls.hops());
  EXPECT_FALSE(calls.executor());
  run_on_strand([&calls](asio::io_context&, auto strand) -> asio::awaitable<void> {
    const auto caller = std::this_thread::get_id();
    const int value = co_await calls.run([&] {
      EXPECT_EQ(std::this_thread::get_id(), caller);
      return 7;
    });
    EXPECT_EQ(value, 7);
    EXPECT_TRUE(strand.running_in_this_thread());
  });
}

TEST(BlockingCalls, WithThreadsCallsOffTheIoThreadsAndResumesOnTheCallersStrand) {
  BlockingCalls calls(true, 2);
  EXPECT_TRUE(calls.hops());
  run_on_strand([&calls](asio::io_context& io, auto strand) -> asio::awaitable<void> {
    for (int i = 0; i < 50; ++i) {
      const std::string value = co_await calls.run([&io, i] {
        EXPECT_FALSE(io.get_executor().running_in_this_thread());
        return std::to_string(i);
      });
      EXPECT_EQ(value, std::to_string(i));
      EXPECT_TRUE(strand.running_in_this_thread());
    }
    bool ran = false;
    co_await calls.run([&ran] { ran = true; });  // void
    EXPECT_TRUE(ran);
    EXPECT_TRUE(strand.running_in_this_thread());
  });
}

TEST(BlockingCalls, AnExceptionIsRethrownOnlyBackOnTheCallersStrand) {
  BlockingCalls calls(true, 2);
  run_on_strand([&calls](asio::io_context&, auto strand) -> asio::awaitable<void> {
    std::optional<std::string> caught;
    try {
      co_await calls.run([]() -> int { throw std::runtime_error("unreachable store"); });
    } catch (const std::runtime_error& error) {
      EXPECT_TRUE(strand.running_in_this_thread());
      caught = error.what();
    }
    EXPECT_EQ(caught, "unreachable store");
  });
}

TEST(BlockingCalls, KeepsTheCallersIoContextRunningWhileItWaits) {
  // Nothing else keeps this io_context busy: were the pending call not counted as work, run()
  // would return before the caller resumed.
  BlockingCalls calls(true, 1);
  asio::io_context io;
  bool resumed = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await calls.run([] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
        resumed = true;
      },
      asio::detached);
  io.run();
  EXPECT_TRUE(resumed);
}

// A service that answers on a thread of its own, as the Redis client's reader does.
TEST(BlockingCalls, ACallAnsweredByAnotherThreadResumesOnTheCallersStrand) {
  BlockingCalls calls(true, 1);
  std::vector<std::thread> answerers;
  run_on_strand([&](asio::io_context&, auto strand) -> asio::awaitable<void> {
    for (int i = 0; i < 20; ++i) {
      const std::optional<std::string> value = co_await calls.run_without_thread<std::string>(
          [&answerers, i](BlockingCalls::Done<std::string> done) {
            answerers.emplace_back(
                [done = std::move(done), i] { done(nullptr, std::to_string(i)); });
            return true;
          });
      EXPECT_TRUE(strand.running_in_this_thread());
      EXPECT_EQ(value, std::to_string(i));
    }
  });
  for (auto& thread : answerers)
    thread.join();
}

TEST(BlockingCalls, ACallTheServiceCannotMakeThisWayIsNotMadeAndSaysSo) {
  BlockingCalls calls(true, 1);
  run_on_strand([&](asio::io_context&, auto) -> asio::awaitable<void> {
    bool done_kept = false;
    const auto value = co_await calls.run_without_thread<int>([&](BlockingCalls::Done<int> done) {
      done_kept = static_cast<bool>(done);
      return false;
    });
    EXPECT_TRUE(done_kept);
    EXPECT_FALSE(value.has_value());
  });
}

TEST(BlockingCalls, AnErrorAnsweredOrThrownAtTheStartIsRethrownToTheCaller) {
  BlockingCalls calls(true, 1);
  run_on_strand([&](asio::io_context&, auto strand) -> asio::awaitable<void> {
    std::thread answerer;
    try {
      co_await calls.run_without_thread<int>([&](BlockingCalls::Done<int> done) {
        answerer = std::thread([done = std::move(done)] {
          // Made before the call: the runtime_error temporary shares the message's
          // reference-counted string with the exception, and it must be gone before the
          // exception reaches the caller's thread, or ThreadSanitizer (which cannot see
          // libstdc++'s counts) reports its release racing the caller's what().
          std::exception_ptr error = std::make_exception_ptr(std::runtime_error("answered"));
          done(std::move(error), 0);
        });
        return true;
      });
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& error) {
      EXPECT_STREQ(error.what(), "answered");
      EXPECT_TRUE(strand.running_in_this_thread());
    }
    answerer.join();
    try {
      co_await calls.run_without_thread<int>(
          [](BlockingCalls::Done<int>) -> bool { throw std::invalid_argument("refused"); });
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& error) {
      EXPECT_STREQ(error.what(), "refused");
    }
  });
}

TEST(BlockingCalls, JoinWaitsForACallStillToBeAnswered) {
  BlockingCalls calls(true, 1);
  asio::io_context io;
  BlockingCalls::Done<int> pending;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await calls.run_without_thread<int>([&](BlockingCalls::Done<int> done) {
          pending = std::move(done);
          return true;
        });
      },
      asio::detached);
  while (!pending && io.run_one() > 0) {
  }  // until the call is started: `pending` holds its answer
  ASSERT_TRUE(pending);
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    calls.join();
    joined = true;
  });
  // join() cannot return before the answer: it is given only after joined is checked false.
  EXPECT_FALSE(joined.load());
  // Answered and let go, as a service does (`done` keeps the io_context busy until then).
  std::exchange(pending, nullptr)(nullptr, 1);
  joiner.join();
  EXPECT_TRUE(joined.load());
  io.run();
}

}  // namespace
}  // namespace tau::gateway
