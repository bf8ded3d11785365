#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "absl/time/time.h"
#include "core/event/event_loop.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// An operation in flight on a GrpcQueue: gRPC holds the object's address as its tag, and the
// queue calls Done(ok) once, as the loop's work, when the operation completes.
class GrpcOp {
 public:
  virtual void Done(bool ok) = 0;

 protected:
  ~GrpcOp() = default;
};

// A GrpcOp that calls owner->*fn(ok): one per kind of operation a call can have in flight
// (read, write, finish...), so that one object can hold several at once.
template <typename Owner>
class BoundOp final : public GrpcOp {
 public:
  using Fn = void (Owner::*)(bool ok);
  BoundOp(Owner* owner, Fn fn) : owner_(owner), fn_(fn) {}
  void Done(bool ok) override { (owner_->*fn_)(ok); }

 private:
  Owner* const owner_;
  const Fn fn_;
};

// The one completion queue of a process, and the one thread that waits on it. Every gRPC call
// the process serves or makes completes here, and each completion runs as the work of the
// process's event loop (EventLoop::Execute: on this thread itself while the loop sleeps), so
// that every gRPC state machine runs on the loop, one thread at a time, without locks.
//
// Why one: gRPC's poller hands the polling role from thread to thread. With the callback API
// two threads per process take turns, and each event then wakes both of them; one thread on
// one queue takes each event with one wake-up (docs/performance.md, optimisation 24). So no
// other queue may be polled in the process: no callback services or calls, and no gRPC default
// health service (HealthService serves health on this queue instead).
//
// Shutdown: calls register while they hold operations on the queue (Enter/Leave, loop
// thread); Shutdown() cancels the client calls among them, waits for all of them to end, and
// only then closes the queue, so that no operation ever starts on a closed queue.
class GrpcQueue {
 public:
  // `cq` is a server's (ServerBuilder::AddCompletionQueue) or, for a process that only makes
  // calls, a plain one (ForClients). The thread starts at once; `loop` must outlive this.
  GrpcQueue(EventLoop* loop, std::unique_ptr<grpc::ServerCompletionQueue> cq);
  static std::unique_ptr<GrpcQueue> ForClients(EventLoop* loop);
  ~GrpcQueue();  // Shutdown() with the default grace when it has not run
  GrpcQueue(const GrpcQueue&) = delete;
  GrpcQueue& operator=(const GrpcQueue&) = delete;

  EventLoop* loop() const { return loop_; }
  grpc::CompletionQueue* cq() const { return cq_.get(); }
  // Null for a queue made ForClients.
  grpc::ServerCompletionQueue* server_cq() const { return server_cq_; }

  // A call is about to put operations on the queue; `client` is its context when it is a
  // client call (Shutdown cancels it). False once the queue is closing: the caller starts
  // nothing and fails the call. Every true is matched by one Leave() when the call's last
  // operation has completed. Any thread (calls start on the loop).
  bool Enter(grpc::ClientContext* client = nullptr);
  void Leave(grpc::ClientContext* client = nullptr);

  // Not on the loop thread or the queue's own; the loop must run meanwhile (the calls' last
  // operations complete on it), and every server on the queue must have been shut down. Cancels
  // the client calls in flight and refuses new ones, waits at most `grace` for every call to
  // end, then closes the queue and joins its thread. A call still running after `grace` leaves
  // the queue open (and leaked) rather than have an operation start on a closed one.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

  // Calls registered now (tests).
  int live_calls();

 private:
  GrpcQueue(EventLoop* loop, std::unique_ptr<grpc::CompletionQueue> cq,
            grpc::ServerCompletionQueue* server_cq);
  static void Run(grpc::CompletionQueue* cq, EventLoop* loop,
                  std::shared_ptr<std::atomic<bool>> abandoned);

  EventLoop* const loop_;
  std::unique_ptr<grpc::CompletionQueue> cq_;
  grpc::ServerCompletionQueue* const server_cq_;
  std::shared_ptr<std::atomic<bool>> abandoned_;  // set when the thread is left running
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable idle_;  // live_ reached 0
  int live_ = 0;
  std::unordered_set<grpc::ClientContext*> clients_;
  bool closing_ = false;  // Shutdown began: client calls are cancelled as they come
  bool closed_ = false;   // the queue was shut down (or given up on)
};

}  // namespace xc
