#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace xc {

// A single-threaded epoll loop. Watch/Unwatch only from the loop thread; Post from any thread
// (the function runs on the loop thread, in posting order).
class EventLoop {
 public:
  using FdCallback = std::function<void(uint32_t events)>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Run();   // until Stop()
  void Stop();  // thread-safe
  void Post(std::function<void()> fn);

  void Watch(int fd, uint32_t events, FdCallback callback);
  void Modify(int fd, uint32_t events);
  void Unwatch(int fd);

 private:
  void DrainPosted();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool running_ = false;
  std::unordered_map<int, std::shared_ptr<FdCallback>> callbacks_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;
};

}  // namespace xc
