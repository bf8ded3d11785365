// Coroutine tasks: results flow through awaits, operations that finish at once do not suspend,
// later ones resume on the loop, WhenAll keeps order, long synchronous chains do not grow the
// stack, and another thread can block on a task.
#include "core/async/task.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace xc {
namespace {

Task<int> Constant(int v) { co_return v; }

Task<int> Sum(int a, int b) {
  int x = co_await Constant(a);
  int y = co_await Constant(b);
  co_return x + y;
}

// Completes on a later loop turn, like a network reply.
auto Later(EventLoop* loop, int v) {
  return AwaitCallback<int>([loop, v](auto resume) {
    loop->Post([resume = std::move(resume), v]() mutable { resume(v); });
  });
}

// Completes inside the call that starts it, like a fast failure.
auto AtOnce(int v) {
  return AwaitCallback<int>([v](auto resume) { resume(v); });
}

TEST(TaskTest, ValuesFlowThroughNestedAwaits) {
  EventLoop loop;
  EXPECT_EQ(RunToCompletion(&loop, Sum(2, 3)), 5);
}

TEST(TaskTest, StatusOrResults) {
  EventLoop loop;
  auto fails = []() -> Task<absl::StatusOr<std::string>> {
    co_return absl::NotFoundError("nope");
  };
  auto wraps = [&]() -> Task<absl::StatusOr<std::string>> {
    absl::StatusOr<std::string> r = co_await fails();
    if (!r.ok()) co_return absl::UnavailableError(std::string(r.status().message()));
    co_return *r;
  };
  absl::StatusOr<std::string> r = RunToCompletion(&loop, wraps());
  EXPECT_TRUE(absl::IsUnavailable(r.status()));
  EXPECT_EQ(r.status().message(), "nope");
}

TEST(TaskTest, InlineCompletionDoesNotSuspend) {
  bool done = false;
  auto flow = [&]() -> Task<int> {
    int a = co_await AtOnce(1);
    int b = co_await AtOnce(2);
    co_return a + b;
  };
  int result = 0;
  Spawn(flow(), [&](int v) {
    result = v;
    done = true;
  });
  EXPECT_TRUE(done) << "nothing waited, so the task ended inside Spawn";
  EXPECT_EQ(result, 3);
}

TEST(TaskTest, LaterCompletionResumesOnTheLoop) {
  EventLoop loop;
  auto flow = [&]() -> Task<int> {
    int a = co_await Later(&loop, 10);
    int b = co_await Later(&loop, 20);
    co_return a + b;
  };
  bool done = false;
  Spawn(flow(), [&](int v) {
    EXPECT_EQ(v, 30);
    done = true;
  });
  EXPECT_FALSE(done);
  EXPECT_TRUE(loop.RunUntil([&] { return done; }, absl::Seconds(5)));
}

TEST(TaskTest, LongSynchronousChainsKeepTheStackFlat) {
  EventLoop loop;
  auto chain = [&]() -> Task<int> {
    int total = 0;
    for (int i = 0; i < 1000000; ++i) total += co_await Constant(1) + co_await AtOnce(0);
    co_return total;
  };
  EXPECT_EQ(RunToCompletion(&loop, chain()), 1000000);
}

TEST(TaskTest, WhenAllRunsConcurrentlyAndKeepsOrder) {
  EventLoop loop;
  std::vector<int> started;
  auto item = [&](int i) -> Task<int> {
    started.push_back(i);
    int v = co_await Later(&loop, i * 10);
    co_return v + 1;
  };
  auto all = [&]() -> Task<std::vector<int>> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(item(i));
    co_return co_await WhenAll(std::move(tasks));
  };
  std::vector<int> results = RunToCompletion(&loop, all());
  EXPECT_EQ(started, (std::vector<int>{0, 1, 2, 3, 4})) << "all started before any finished";
  EXPECT_EQ(results, (std::vector<int>{1, 11, 21, 31, 41}));

  auto none = []() -> Task<std::vector<int>> { co_return co_await WhenAll(std::vector<Task<int>>{}); };
  EXPECT_TRUE(RunToCompletion(&loop, none()).empty());
}

TEST(TaskTest, WhenBothStartsBothBeforeEitherEnds) {
  EventLoop loop;
  std::vector<std::string> order;
  auto number = [&]() -> Task<int> {
    order.push_back("number started");
    int v = co_await Later(&loop, 4);
    order.push_back("number ended");
    co_return v;
  };
  auto text = [&]() -> Task<std::string> {
    order.push_back("text started");
    co_return std::string("x");
  };
  auto both = [&]() -> Task<std::pair<int, std::string>> {
    co_return co_await WhenBoth(number(), text());
  };
  std::pair<int, std::string> r = RunToCompletion(&loop, both());
  EXPECT_EQ(r.first, 4);
  EXPECT_EQ(r.second, "x");
  EXPECT_EQ(order, (std::vector<std::string>{"number started", "text started", "number ended"}));
}

TEST(TaskTest, SleepWaitsForTheTimer) {
  EventLoop loop;
  auto flow = [&]() -> Task<int64_t> {
    const int64_t start = EventLoop::NowNanos();
    co_await Sleep(&loop, absl::Milliseconds(30));
    co_return EventLoop::NowNanos() - start;
  };
  EXPECT_GE(RunToCompletion(&loop, flow()), 30 * 1000 * 1000);
}

TEST(TaskTest, AnotherThreadBlocksOnATask) {
  EventLoop loop;
  std::thread runner([&] { loop.Run(); });
  auto flow = [&]() -> Task<int> {
    EXPECT_TRUE(loop.InLoopThread());
    co_return co_await Later(&loop, 7) * 6;
  };
  EXPECT_EQ(BlockOn(&loop, flow()), 42);
  loop.Stop();
  runner.join();
}

}  // namespace
}  // namespace xc
