#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace xc {

// A few threads for blocking or CPU-heavy work (password hashing, Redis lookups) that must not
// run on the event loop. Tasks run in FIFO order across the threads.
class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();  // drains queued work, then joins
  void Submit(std::function<void()> task);

 private:
  void Worker();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace xc
