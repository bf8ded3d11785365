#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace xc {

// A single-threaded epoll loop with timers. Every process runs its logic, its sockets and its
// Redis connections on one of these; other threads hand work over with Post().
//
// One turn of the loop: I/O callbacks, then due timers, then posted functions, then deferred
// ones. Defer() is how writes coalesce: everything a turn produces for one socket (or one
// Redis connection, or one outgoing gRPC batch) goes out in one call at the end of the turn.
//
// Thread-safety: Post() and Stop() from any thread; everything else on the loop thread (the
// thread inside Run() or RunUntil()).
class EventLoop {
 public:
  using FdCallback = std::function<void(uint32_t events)>;
  using TimerId = uint64_t;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Run();   // until Stop()
  void Stop();  // thread-safe
  // Runs turns on the calling thread until `done()` holds (checked after every turn) or
  // `timeout` passes; returns whether `done()` held. For tests and tools that own the loop.
  bool RunUntil(const std::function<bool()>& done, absl::Duration timeout);

  // Any thread. Runs `fn` on the loop thread, in posting order.
  void Post(absl::AnyInvocable<void()> fn);
  // Loop thread. Runs `fn` at the end of the current turn (after this turn's I/O and posts).
  void Defer(absl::AnyInvocable<void()> fn);
  // Loop thread. Runs `fn` once after `delay`; Cancel() before then drops it.
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn);
  void Cancel(TimerId id);
  // Whether the calling thread is the one running this loop now.
  bool InLoopThread() const { return running_thread_.load() == std::this_thread::get_id(); }

  void Watch(int fd, uint32_t events, FdCallback callback);
  void Modify(int fd, uint32_t events);
  void Unwatch(int fd);

  // Monotonic nanoseconds (what timers are measured in).
  static int64_t NowNanos();

 private:
  // One turn; waits at most `max_wait_ms` for I/O when nothing is due.
  void Turn(int max_wait_ms);
  int WaitMillis(int max_wait_ms) const;
  void RunTimers();
  void DrainPosted();
  void DrainDeferred();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<std::thread::id> running_thread_{};
  std::unordered_map<int, std::shared_ptr<FdCallback>> callbacks_;

  std::mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_;
  bool stop_requested_ = false;
  bool wake_pending_ = false;  // an eventfd write is on its way: no need for another

  std::vector<absl::AnyInvocable<void()>> deferred_;

  struct TimerEntry {
    int64_t when_ns;
    TimerId id;
    bool operator>(const TimerEntry& o) const {
      return when_ns != o.when_ns ? when_ns > o.when_ns : id > o.id;
    }
  };
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timer_heap_;
  std::unordered_map<TimerId, absl::AnyInvocable<void()>> timers_;
  TimerId next_timer_ = 1;
};

}  // namespace xc
