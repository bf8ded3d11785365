// The event loop: posted work runs on the loop thread in order, deferred work after the turn's
// other work, timers in deadline order and never after Cancel, fds report readiness (never to a
// later registration of the same fd number); Execute takes an idle loop's turn on the calling
// thread, never alongside the loop thread, and keeps the posting order.
#include "core/event/event_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <functional>
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

// A post must wake a sleeping loop at once: a lost wake-up would leave it waiting for the
// loop's longest sleep (1 s). Posts come from several threads at random moments, some while
// the loop sleeps, some while it is busy with the posts before them.
TEST(EventLoopTest, EveryPostWakesASleepingLoop) {
  EventLoop loop;
  std::thread runner([&] { loop.Run(); });
  std::atomic<int64_t> worst_ns{0};
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 3; ++t) {
    posters.emplace_back([&, t] {
      uint32_t seed = 12345u + static_cast<uint32_t>(t);
      for (int i = 0; i < 300; ++i) {
        seed = seed * 1103515245u + 12345u;
        std::this_thread::sleep_for(std::chrono::microseconds((seed >> 8) % 2000));
        const int64_t posted = EventLoop::NowNanos();
        loop.Post([&, posted] {
          const int64_t waited = EventLoop::NowNanos() - posted;
          int64_t worst = worst_ns.load();
          while (waited > worst && !worst_ns.compare_exchange_weak(worst, waited)) {
          }
          ++ran;
        });
      }
    });
  }
  for (std::thread& p : posters) p.join();
  for (int i = 0; i < 2000 && ran.load() < 900; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  loop.Stop();
  runner.join();
  EXPECT_EQ(ran.load(), 900);
  EXPECT_LT(worst_ns.load(), 500'000'000) << "a post waited for the loop's longest sleep";
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

// Waits until the running loop has done a posted function; it then sleeps in epoll_wait (up to
// a second: nothing else is due).
void SettleIdle(EventLoop& loop) {
  std::atomic<bool> ran{false};
  loop.Post([&] { ran = true; });
  while (!ran.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

TEST(EventLoopTest, ExecuteOnAnIdleLoopRunsOnTheCallingThreadAsTheLoop) {
  EventLoop loop;
  std::thread runner([&] { loop.Run(); });
  bool inline_run = false;
  bool in_loop = false;
  bool deferred_inline = false;
  uint64_t attempts = 0;
  for (int attempt = 0; attempt < 20 && !inline_run; ++attempt, ++attempts) {
    SettleIdle(loop);
    std::atomic<bool> done{false};
    const std::thread::id caller = std::this_thread::get_id();
    loop.Execute([&] {
      inline_run = std::this_thread::get_id() == caller;
      in_loop = loop.InLoopThread();
      loop.Defer([&] {
        deferred_inline = std::this_thread::get_id() == caller;
        done = true;
      });
    });
    while (!done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(inline_run);
  EXPECT_TRUE(in_loop);
  EXPECT_TRUE(deferred_inline);  // the turn's deferred work too, before Execute returned
  const EventLoop::ExecuteCounts counts = loop.execute_counts();
  EXPECT_EQ(counts.inline_turns, 1u);  // the attempt that ended the loop
  EXPECT_EQ(counts.inline_turns + counts.posted, attempts);
  loop.Stop();
  runner.join();
}

TEST(EventLoopTest, ExecuteOnTheLoopThreadPostsInsteadOfNesting) {
  EventLoop loop;
  std::vector<std::string> order;
  bool done = false;
  loop.Post([&] {
    loop.Execute([&] {
      order.push_back("executed");
      done = true;
    });
    order.push_back("outer");
  });
  ASSERT_TRUE(loop.RunUntil([&] { return done; }, absl::Seconds(5)));
  EXPECT_EQ(order, (std::vector<std::string>{"outer", "executed"}));
  EXPECT_EQ(loop.execute_counts().inline_turns, 0u);
  EXPECT_EQ(loop.execute_counts().posted, 1u);
}

TEST(EventLoopTest, PostAndExecuteFromOneThreadKeepItsOrder) {
  EventLoop loop;
  std::thread runner([&] { loop.Run(); });
  std::vector<int> seen;
  std::atomic<int> count{0};
  constexpr int kItems = 2000;
  for (int i = 0; i < kItems; ++i) {
    auto fn = [&, i] {
      seen.push_back(i);
      ++count;
    };
    if (i % 3 == 0) {
      loop.Post(fn);
    } else {
      loop.Execute(fn);
    }
    if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  while (count.load() < kItems) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  loop.Stop();
  runner.join();
  ASSERT_EQ(seen.size(), static_cast<size_t>(kItems));
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(seen[i], i);
  const EventLoop::ExecuteCounts counts = loop.execute_counts();
  EXPECT_EQ(counts.inline_turns + counts.posted, static_cast<uint64_t>(kItems - (kItems + 2) / 3));
}

TEST(EventLoopTest, ExecutedWorkNeverRunsAlongsideTheLoopsOwn) {
  EventLoop loop;
  int counter = 0;  // plain: only the loop's work touches it
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  auto work = [&] {
    if (inside.fetch_add(1) != 0) overlapped = true;
    ++counter;
    inside.fetch_sub(1);
  };
  // The loop's own work: a timer that re-arms itself, and a socket it reads.
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  loop.Watch(fds[0], 0x001 /* EPOLLIN */, [&](uint32_t) {
    char buf[64];
    while (read(fds[0], buf, sizeof(buf)) > 0) work();
  });
  std::function<void()> tick = [&] {
    work();
    loop.RunAfter(absl::Microseconds(200), tick);
  };
  std::thread runner([&] {
    loop.Post(tick);
    loop.Run();
  });
  constexpr int kPerThread = 5000;
  std::atomic<int> executed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop.Execute([&] {
          work();
          ++executed;
        });
        if (t == 0 && i % 50 == 0) (void)!write(fds[1], "x", 1);
        if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  while (executed.load() < 3 * kPerThread) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<int> final_count{-1};
  loop.Post([&] { final_count = counter; });
  while (final_count.load() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  loop.Stop();
  runner.join();
  EXPECT_FALSE(overlapped.load());
  EXPECT_GE(final_count.load(), 3 * kPerThread);
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, ATimerAnExecutedTurnSetsWakesTheSleepingLoop) {
  EventLoop loop;
  std::thread runner([&] { loop.Run(); });
  SettleIdle(loop);  // the loop thread has just chosen to sleep for up to a second
  std::atomic<int64_t> fired_ns{0};
  const int64_t start = EventLoop::NowNanos();
  loop.Execute([&] {
    loop.RunAfter(absl::Milliseconds(10), [&] { fired_ns = EventLoop::NowNanos(); });
  });
  while (fired_ns.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  loop.Stop();
  runner.join();
  // Not a speed check: without the wake-up it fires when the loop's second-long sleep ends.
  EXPECT_LT(fired_ns.load() - start, int64_t{600} * 1000 * 1000);
}

TEST(EventLoopTest, ReadinessOfAnUnwatchedFdNeverReachesItsNextRegistration) {
  EventLoop loop;
  int a[2], b[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
  bool swapped = false;
  int fresh_peer = -1;
  int stale_calls = 0;
  // Whichever of the two readable fds the turn reports first replaces the other with a fresh,
  // empty socket under the same fd number; the other's readiness, already in this turn's
  // batch, belongs to the old socket.
  auto replace = [&](int fd) {
    loop.Unwatch(fd);
    int fresh[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fresh), 0);
    ASSERT_EQ(dup2(fresh[0], fd), fd);
    close(fresh[0]);
    fresh_peer = fresh[1];  // kept open: the fresh socket has nothing to read, ever
    loop.Watch(fd, 0x001 /* EPOLLIN */, [&](uint32_t) { ++stale_calls; });
    swapped = true;
  };
  loop.Watch(a[0], 0x001, [&](uint32_t) {
    if (!swapped) replace(b[0]);
  });
  loop.Watch(b[0], 0x001, [&](uint32_t) {
    if (!swapped) replace(a[0]);
  });
  ASSERT_EQ(write(a[1], "x", 1), 1);
  ASSERT_EQ(write(b[1], "x", 1), 1);
  ASSERT_TRUE(loop.RunUntil([&] { return swapped; }, absl::Seconds(5)));
  loop.RunUntil([] { return false; }, absl::Milliseconds(20));
  EXPECT_EQ(stale_calls, 0);
  loop.Unwatch(a[0]);
  loop.Unwatch(b[0]);
  for (int fd : {a[0], a[1], b[0], b[1], fresh_peer}) close(fd);
}

}  // namespace
}  // namespace xc
