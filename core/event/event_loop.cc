#include "core/event/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "core/base/log.h"

namespace xc {
namespace {

// A turn never sleeps longer than this, so Stop() and RunUntil() deadlines are noticed.
constexpr int kMaxWaitMs = 1000;

// An epoll registration's data: the fd and the generation of its Watch (the wake fd's is 0).
uint64_t EventData(int fd, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | static_cast<uint32_t>(fd);
}

}  // namespace

int64_t EventLoop::NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  XC_CHECK(epoll_fd_ >= 0 && wake_fd_ >= 0) << "epoll/eventfd";
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = EventData(wake_fd_, 0);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

EventLoop::~EventLoop() {
  close(wake_fd_);
  close(epoll_fd_);
}

void EventLoop::Post(absl::AnyInvocable<void()> fn) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
    // A loop thread that is not asleep drains posted_ before it sleeps again (Turn checks
    // under mu_): only a sleeping one needs the eventfd.
    wake = sleeping_ && !wake_pending_;
    if (wake) wake_pending_ = true;
  }
  if (wake) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
}

void EventLoop::Execute(absl::AnyInvocable<void()> fn) {
  // The loop's own thread (or one already running its work) must not try to take the turn
  // again: it would run `fn` inside whatever it is doing now.
  if (InLoopThread() || !turn_mu_.try_lock()) {
    executed_posted_.fetch_add(1, std::memory_order_relaxed);
    return Post(std::move(fn));
  }
  std::unique_lock<std::mutex> own(turn_mu_, std::adopt_lock);
  // No loop thread inside Run or RunUntil: nobody would take the turn back. (A loop asked to
  // stop still drains what is posted before Run returns, so running `fn` now is the same.)
  if (!borrowable_) {
    own.unlock();
    executed_posted_.fetch_add(1, std::memory_order_relaxed);
    return Post(std::move(fn));
  }
  executed_inline_.fetch_add(1, std::memory_order_relaxed);
  const std::thread::id sleeper = running_thread_.exchange(std::this_thread::get_id());
  DrainPosted();  // what was posted before `fn` runs before it
  fn();
  DrainDeferred();
  running_thread_ = sleeper;
  // The sleeping loop thread chose its wait before this turn: wake it when this turn left work
  // for it (deferred work past the rounds, a timer due before it would wake).
  const bool wake = !deferred_.empty() ||
                    (!timer_heap_.empty() && timer_heap_.top().when_ns < sleep_deadline_ns_);
  own.unlock();
  if (wake) Post([] {});  // an empty post: the eventfd write that ends the sleep
}

void EventLoop::Defer(absl::AnyInvocable<void()> fn) { deferred_.push_back(std::move(fn)); }

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  const TimerId id = next_timer_++;
  const int64_t when =
      NowNanos() + std::max<int64_t>(0, absl::ToInt64Nanoseconds(delay));
  timer_heap_.push({when, id});
  timers_.emplace(id, std::move(fn));
  return id;
}

void EventLoop::Cancel(TimerId id) { timers_.erase(id); }

void EventLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void EventLoop::Watch(int fd, uint32_t events, FdCallback callback) {
  const uint32_t generation = next_generation_++;
  callbacks_[fd] = Watched{generation, std::make_shared<FdCallback>(std::move(callback))};
  epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = EventData(fd, generation);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void EventLoop::Modify(int fd, uint32_t events) {
  auto it = callbacks_.find(fd);
  if (it == callbacks_.end()) return;
  epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = EventData(fd, it->second.generation);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::Unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  callbacks_.erase(fd);
}

int EventLoop::WaitMillis(int max_wait_ms) const {
  if (!deferred_.empty()) return 0;
  // Drop cancelled timers at the top lazily: only their deadline matters here.
  int wait = max_wait_ms;
  if (!timer_heap_.empty()) {
    const int64_t until = timer_heap_.top().when_ns - NowNanos();
    if (until <= 0) return 0;
    wait = static_cast<int>(std::min<int64_t>(wait, (until + 999999) / 1000000));
  }
  return wait;
}

void EventLoop::RunTimers() {
  if (timer_heap_.empty()) return;
  const int64_t now = NowNanos();
  while (!timer_heap_.empty() && timer_heap_.top().when_ns <= now) {
    const TimerId id = timer_heap_.top().id;
    timer_heap_.pop();
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    absl::AnyInvocable<void()> fn = std::move(it->second);
    timers_.erase(it);
    fn();
  }
}

void EventLoop::DrainPosted() {
  std::vector<absl::AnyInvocable<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::DrainDeferred() {
  // Deferred work may defer more (a flush that completes a call that writes again); a few
  // rounds settle it, and anything left runs on the next turn, which then does not sleep.
  for (int round = 0; round < 4 && !deferred_.empty(); ++round) {
    std::vector<absl::AnyInvocable<void()>> batch;
    batch.swap(deferred_);
    for (auto& fn : batch) fn();
  }
}

void EventLoop::Turn(std::unique_lock<std::mutex>& own, int max_wait_ms) {
  epoll_event events[256];
  int wait_ms = WaitMillis(max_wait_ms);
  if (wait_ms > 0) {
    // Posts made from here on wake this thread (Post sees sleeping_); one made before is
    // drained by a turn that does not sleep.
    std::lock_guard<std::mutex> lock(mu_);
    if (posted_.empty()) {
      sleeping_ = true;
    } else {
      wait_ms = 0;
    }
  }
  // While this thread sleeps, Execute() may run the loop's work on another one.
  const bool sleeps = wait_ms > 0;
  if (sleeps) {
    sleep_deadline_ns_ = NowNanos() + static_cast<int64_t>(wait_ms) * 1000000;
    own.unlock();
  }
  int n = epoll_wait(epoll_fd_, events, 256, wait_ms);
  if (sleeps) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sleeping_ = false;
    }
    own.lock();
  }
  if (n < 0 && errno != EINTR) {
    XC_LOG(ERROR) << "epoll_wait failed: " << errno;
    n = 0;
  }
  for (int i = 0; i < n; ++i) {
    const int fd = static_cast<int>(static_cast<uint32_t>(events[i].data.u64));
    const uint32_t generation = static_cast<uint32_t>(events[i].data.u64 >> 32);
    if (fd == wake_fd_ && generation == 0) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof(v));
      std::lock_guard<std::mutex> lock(mu_);
      wake_pending_ = false;
      continue;
    }
    auto it = callbacks_.find(fd);
    // Unwatched, or unwatched and watched again (by an earlier callback of this turn, or by a
    // turn Execute() ran while this thread slept): the readiness is the old registration's. A
    // level-triggered fd still ready is reported again next turn.
    if (it == callbacks_.end() || it->second.generation != generation) continue;
    std::shared_ptr<FdCallback> cb = it->second.callback;  // survives Unwatch inside the callback
    (*cb)(events[i].events);
  }
  RunTimers();
  DrainPosted();
  DrainDeferred();
}

void EventLoop::EnterLoop(std::unique_lock<std::mutex>& own) {
  own.lock();
  borrowable_ = true;
}

void EventLoop::LeaveLoop(std::unique_lock<std::mutex>& own) {
  borrowable_ = false;
  own.unlock();
}

void EventLoop::Run() {
  std::unique_lock<std::mutex> own(turn_mu_, std::defer_lock);
  EnterLoop(own);
  running_thread_ = std::this_thread::get_id();
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_requested_) break;
    }
    Turn(own, kMaxWaitMs);
  }
  DrainPosted();
  DrainDeferred();
  running_thread_ = std::thread::id();
  LeaveLoop(own);
}

bool EventLoop::RunUntil(const std::function<bool()>& done, absl::Duration timeout) {
  std::unique_lock<std::mutex> own(turn_mu_, std::defer_lock);
  EnterLoop(own);
  const std::thread::id previous = running_thread_.exchange(std::this_thread::get_id());
  const int64_t deadline = NowNanos() + absl::ToInt64Nanoseconds(timeout);
  bool ok = done();
  while (!ok) {
    const int64_t left_ms = (deadline - NowNanos()) / 1000000;
    if (left_ms < 0) break;
    Turn(own, static_cast<int>(std::min<int64_t>(left_ms, 50)));
    ok = done();
  }
  running_thread_ = previous;
  LeaveLoop(own);
  return ok;
}

}  // namespace xc
