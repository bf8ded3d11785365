// The event loop: posted work runs on the loop thread in order, deferred work after the turn's
// other work, timers in deadline order and never after Cancel, fds report readiness.
#include "core/event/event_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace xc {
namespace {

TEST(EventLoopTest, PostedWorkRunsInOrderOnTheLoopThread) {
  EventLoop loop;
  std::vector<int> seen;
  std::atomic<bool> wrong_thread{false};
  std::thread runner([&] { loop.Run(); });
  for (int i = 0; i < 100; ++i) {
    loop.Post([&, i] {
      if (!loop.InLoopThread()) wrong_thread = true;
      seen.push_back(i);
    });
  }
  loop.Stop();
  runner.join();
  EXPECT_FALSE(wrong_thread.load());
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(EventLoopTest, DeferredWorkRunsAfterTheTurnsPosts) {
  EventLoop loop;
  std::vector<std::string> order;
  bool done = false;
  loop.Post([&] {
    loop.Defer([&] {
      order.push_back("deferred");
      done = true;
    });
    order.push_back("post 1");
  });
  loop.Post([&] { order.push_back("post 2"); });
  ASSERT_TRUE(loop.RunUntil([&] { return done; }, absl::Seconds(5)));
  EXPECT_EQ(order, (std::vector<std::string>{"post 1", "post 2", "deferred"}));
}

TEST(EventLoopTest, TimersFireInDeadlineOrderAndCancelledOnesNever) {
  EventLoop loop;
  std::vector<int> fired;
  loop.RunAfter(absl::Milliseconds(30), [&] { fired.push_back(30); });
  loop.RunAfter(absl::Milliseconds(10), [&] { fired.push_back(10); });
  EventLoop::TimerId cancelled = loop.RunAfter(absl::Milliseconds(20), [&] { fired.push_back(20); });
  loop.Cancel(cancelled);
  const int64_t start = EventLoop::NowNanos();
  ASSERT_TRUE(loop.RunUntil([&] { return fired.size() == 2; }, absl::Seconds(5)));
  EXPECT_GE(EventLoop::NowNanos() - start, 30 * 1000 * 1000);
  EXPECT_EQ(fired, (std::vector<int>{10, 30}));
  loop.RunUntil([] { return false; }, absl::Milliseconds(30));
  EXPECT_EQ(fired.size(), 2u);
}

TEST(EventLoopTest, WatchedSocketReportsReadable) {
  EventLoop loop;
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string got;
  loop.Watch(fds[0], 0x001 /* EPOLLIN */, [&](uint32_t) {
    char buf[16];
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  });
  ASSERT_EQ(write(fds[1], "hi", 2), 2);
  ASSERT_TRUE(loop.RunUntil([&] { return got == "hi"; }, absl::Seconds(5)));
  loop.Unwatch(fds[0]);
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace xc
