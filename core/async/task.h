#pragma once

#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "core/base/log.h"
#include "core/event/event_loop.h"

// Coroutines for the services' logic: a flow reads like blocking code (`co_await` a Redis
// round trip, a gRPC call, a timer) while its thread runs thousands of other flows meanwhile.
//
//   Task<absl::StatusOr<int>> CountItems(AsyncRedisClient& redis, std::string key) {
//     absl::StatusOr<RedisReply> r = co_await redis.Command({"HLEN", key});
//     if (!r.ok()) co_return r.status();
//     co_return r->integer;
//   }
//
// A Task starts when it is awaited (or handed to Spawn) and resumes its awaiter when it ends.
// Everything runs on one event loop thread: an operation that completes on another thread
// (a gRPC callback) posts its resumption to the loop. No exceptions: one escaping a coroutine
// terminates the process.
namespace xc {

template <typename T>
class Task;

namespace async_internal {

// When a task ends inside the await that started it (nothing in it had to wait), control goes
// back to that await, which then does not suspend; only a task that really suspended resumes
// its awaiter from here. That keeps the stack flat over any number of synchronous awaits
// without relying on tail calls, which GCC does not make for symmetric transfer at -O0.
struct FinalAwaiter {
  bool await_ready() noexcept { return false; }
  template <typename Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
    auto& p = h.promise();
    if (p.starting) {
      p.ended_while_starting = true;
      return std::noop_coroutine();
    }
    return p.continuation ? p.continuation : std::noop_coroutine();
  }
  void await_resume() noexcept {}
};

struct PromiseBase {
  std::coroutine_handle<> continuation;
  bool starting = false;              // inside the awaiter's first resume
  bool ended_while_starting = false;
  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { std::terminate(); }
};

template <typename T>
struct Promise : PromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T Take() { return std::move(*value); }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void Take() {}
};

}  // namespace async_internal

template <typename T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = async_internal::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
    promise_type& p = h_.promise();
    p.continuation = awaiting;
    p.starting = true;
    h_.resume();
    p.starting = false;
    return !p.ended_while_starting;  // ended already: go on without suspending
  }
  T await_resume() { return h_.promise().Take(); }

 private:
  Handle h_;
};

namespace async_internal {

template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}

inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

// A coroutine nobody awaits: it starts at once and frees itself at the end.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

template <typename T, typename Done>
Detached SpawnWith(Task<T> task, Done done) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(task);
    done();
  } else {
    done(co_await std::move(task));
  }
}

template <typename T>
Detached SpawnAlone(Task<T> task) {
  co_await std::move(task);
}

}  // namespace async_internal

// Starts `task` now on the calling (loop) thread; `done(result)` runs when it ends (possibly
// before Spawn returns, when nothing in it had to wait).
template <typename T, typename Done>
void Spawn(Task<T> task, Done done) {
  async_internal::SpawnWith(std::move(task), std::move(done));
}
template <typename T>
void Spawn(Task<T> task) {
  async_internal::SpawnAlone(std::move(task));
}

// Awaits an operation that reports through a callback. `start(resume)` begins it; `resume(T)`
// must be called exactly once, on the loop thread: from inside `start` (the operation finished
// at once) or later from the loop.
template <typename T, typename Start>
class CallbackAwaiter {
 public:
  explicit CallbackAwaiter(Start start) : start_(std::move(start)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    start_([this](T value) {
      result_.emplace(std::move(value));
      if (suspended_) {
        handle_.resume();
      } else {
        completed_inline_ = true;
      }
    });
    if (completed_inline_) return false;  // do not suspend: the result is here
    suspended_ = true;
    return true;
  }
  T await_resume() { return std::move(*result_); }

 private:
  Start start_;
  std::coroutine_handle<> handle_;
  std::optional<T> result_;
  bool suspended_ = false;
  bool completed_inline_ = false;
};

template <typename T, typename Start>
CallbackAwaiter<T, Start> AwaitCallback(Start start) {
  return CallbackAwaiter<T, Start>(std::move(start));
}

// Resumes after `delay` (a timer on `loop`; other flows run meanwhile).
inline auto Sleep(EventLoop* loop, absl::Duration delay) {
  return AwaitCallback<bool>([loop, delay](auto resume) {
    loop->RunAfter(delay, [resume = std::move(resume)]() mutable { resume(true); });
  });
}

// Runs every task concurrently (all on the loop thread); resumes when the last one ends, with
// their results in the order given.
template <typename T>
Task<std::vector<T>> WhenAll(std::vector<Task<T>> tasks) {
  struct State {
    std::vector<std::optional<T>> results;
    size_t remaining = 0;
    absl::AnyInvocable<void(bool)> resume;
  };
  auto state = std::make_shared<State>();
  state->results.resize(tasks.size());
  state->remaining = tasks.size();
  if (!tasks.empty()) {
    co_await AwaitCallback<bool>([&](auto resume) {
      state->resume = std::move(resume);
      for (size_t i = 0; i < tasks.size(); ++i) {
        Spawn(std::move(tasks[i]), [state, i](T value) {
          state->results[i].emplace(std::move(value));
          if (--state->remaining == 0) state->resume(true);
        });
      }
    });
  }
  std::vector<T> out;
  out.reserve(state->results.size());
  for (std::optional<T>& r : state->results) out.push_back(std::move(*r));
  co_return out;
}

// Runs two tasks concurrently; resumes with both results when both have ended. What they send
// in the same loop turn leaves together (one Redis write, one batched call).
template <typename A, typename B>
Task<std::pair<A, B>> WhenBoth(Task<A> a, Task<B> b) {
  struct State {
    std::optional<A> a;
    std::optional<B> b;
    int remaining = 2;
    absl::AnyInvocable<void(bool)> resume;
  };
  auto state = std::make_shared<State>();
  co_await AwaitCallback<bool>([&](auto resume) {
    state->resume = std::move(resume);
    Spawn(std::move(a), [state](A value) {
      state->a.emplace(std::move(value));
      if (--state->remaining == 0) state->resume(true);
    });
    Spawn(std::move(b), [state](B value) {
      state->b.emplace(std::move(value));
      if (--state->remaining == 0) state->resume(true);
    });
  });
  co_return std::make_pair(std::move(*state->a), std::move(*state->b));
}

// For a thread that is not the loop's: runs `task` on `loop` and blocks until it ends.
template <typename T>
T BlockOn(EventLoop* loop, Task<T> task) {
  XC_CHECK(!loop->InLoopThread()) << "BlockOn on the loop thread would wait for itself";
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<T> result;
  loop->Post([&, task = std::move(task)]() mutable {
    Spawn(std::move(task), [&](T value) {
      std::lock_guard<std::mutex> lock(mu);
      result.emplace(std::move(value));
      done = true;
      cv.notify_all();
    });
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return std::move(*result);
}

// For tests and tools that own `loop` and are on its thread (or no thread runs it): runs the
// loop here until `task` ends.
template <typename T>
T RunToCompletion(EventLoop* loop, Task<T> task) {
  std::optional<T> result;
  Spawn(std::move(task), [&](T value) { result.emplace(std::move(value)); });
  if (!result.has_value()) {
    XC_CHECK(loop->RunUntil([&] { return result.has_value(); }, absl::Hours(1)))
        << "task did not finish";
  }
  return std::move(*result);
}

}  // namespace xc
