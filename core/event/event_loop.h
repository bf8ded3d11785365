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
// Thread-safety: Post(), Execute() and Stop() from any thread; everything else on the loop
// thread (the thread inside Run() or RunUntil(), or one that Execute() lets run the loop's work
// while the loop thread sleeps).
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
  // Any thread. Like Post(), but when the loop thread is asleep in epoll_wait the calling thread
  // takes the loop's turn itself: what was posted before, then `fn`, then the deferred work, all
  // at once on this thread, with the loop thread kept out until it is done. A thread that has
  // just been woken for an event (a gRPC completion) does the work instead of waking the loop
  // thread for it: one wake-up and context switch fewer per hop. When the loop is busy or not
  // running, or the caller is already running the loop's work, it is Post().
  void Execute(absl::AnyInvocable<void()> fn);
  // How Execute() calls have run since the loop was made: `inline_turns` on the caller's thread,
  // `posted` handed to the loop thread. Any thread; each count is exact, the pair is not one
  // snapshot.
  struct ExecuteCounts {
    uint64_t inline_turns = 0;
    uint64_t posted = 0;
  };
  ExecuteCounts execute_counts() const {
    return {executed_inline_.load(std::memory_order_relaxed),
            executed_posted_.load(std::memory_order_relaxed)};
  }
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
  // One turn; waits at most `max_wait_ms` for I/O when nothing is due. `own` holds turn_mu_
  // except while waiting.
  void Turn(std::unique_lock<std::mutex>& own, int max_wait_ms);
  // The thread that holds turn_mu_ runs the loop's work; the loop thread lets it go only while
  // it sleeps in epoll_wait, so that Execute() can take a turn.
  void EnterLoop(std::unique_lock<std::mutex>& own);
  void LeaveLoop(std::unique_lock<std::mutex>& own);
  int WaitMillis(int max_wait_ms) const;
  void RunTimers();
  void DrainPosted();
  void DrainDeferred();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<std::thread::id> running_thread_{};
  struct Watched {
    uint32_t generation;  // tells a registration from an earlier one of the same fd number
    std::shared_ptr<FdCallback> callback;
  };
  std::unordered_map<int, Watched> callbacks_;
  uint32_t next_generation_ = 1;

  std::mutex turn_mu_;  // held by whoever runs the loop's work (see Execute)
  std::atomic<uint64_t> executed_inline_{0};
  std::atomic<uint64_t> executed_posted_{0};
  bool borrowable_ = false;        // under turn_mu_: a loop thread is inside Run or RunUntil
  int64_t sleep_deadline_ns_ = 0;  // under turn_mu_: when the sleeping loop thread wakes anyway

  std::mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_;
  bool stop_requested_ = false;
  bool wake_pending_ = false;  // an eventfd write is on its way: no need for another
  bool sleeping_ = false;      // the loop thread is (about to be) in a waiting epoll_wait

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
