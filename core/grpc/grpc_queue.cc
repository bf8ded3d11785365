#include "core/grpc/grpc_queue.h"

#include <pthread.h>

#include <chrono>
#include <utility>

#include "core/base/log.h"

namespace xc {

GrpcQueue::GrpcQueue(EventLoop* loop, std::unique_ptr<grpc::ServerCompletionQueue> cq)
    : GrpcQueue(loop, std::unique_ptr<grpc::CompletionQueue>(cq.get()), cq.get()) {
  cq.release();  // owned through cq_ now
}

GrpcQueue::GrpcQueue(EventLoop* loop, std::unique_ptr<grpc::CompletionQueue> cq,
                     grpc::ServerCompletionQueue* server_cq)
    : loop_(loop),
      cq_(std::move(cq)),
      server_cq_(server_cq),
      abandoned_(std::make_shared<std::atomic<bool>>(false)) {
  // The thread holds what it uses itself: a queue given up on outlives this object.
  thread_ = std::thread(&GrpcQueue::Run, cq_.get(), loop_, abandoned_);
}

std::unique_ptr<GrpcQueue> GrpcQueue::ForClients(EventLoop* loop) {
  return std::unique_ptr<GrpcQueue>(
      new GrpcQueue(loop, std::make_unique<grpc::CompletionQueue>(), nullptr));
}

GrpcQueue::~GrpcQueue() {
  Shutdown();
  if (thread_.joinable()) {
    // Given up on: the thread still waits on a queue that must not be destroyed, and drops
    // whatever completes from now on instead of handing it to the loop.
    abandoned_->store(true);
    thread_.detach();
    (void)cq_.release();
  }
}

void GrpcQueue::Run(grpc::CompletionQueue* cq, EventLoop* loop,
                    std::shared_ptr<std::atomic<bool>> abandoned) {
  pthread_setname_np(pthread_self(), "grpc_queue");
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
    if (abandoned->load(std::memory_order_relaxed)) continue;
    loop->Execute([op = static_cast<GrpcOp*>(tag), ok] { op->Done(ok); });
  }
}

bool GrpcQueue::Enter(grpc::ClientContext* client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closing_) return false;
  ++live_;
  if (client != nullptr) clients_.insert(client);
  return true;
}

void GrpcQueue::Leave(grpc::ClientContext* client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (client != nullptr) clients_.erase(client);
  if (--live_ == 0) idle_.notify_all();
}

int GrpcQueue::live_calls() {
  std::lock_guard<std::mutex> lock(mu_);
  return live_;
}

void GrpcQueue::Shutdown(absl::Duration grace) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return;
    closing_ = true;
    // Cancelling under the lock keeps every context alive meanwhile (a call leaves, and frees
    // its context, only through Leave). TryCancel completes the call's operations with
    // failures; it does not call back into this.
    for (grpc::ClientContext* client : clients_) client->TryCancel();
    const bool idle =
        idle_.wait_for(lock, std::chrono::nanoseconds(absl::ToInt64Nanoseconds(grace)),
                       [this] { return live_ == 0; });
    closed_ = true;
    if (!idle) {
      XC_LOG(WARNING) << "gRPC queue: " << live_ << " calls still running after "
                      << absl::FormatDuration(grace) << "; leaving the queue open";
      return;
    }
  }
  cq_->Shutdown();
  thread_.join();
}

}  // namespace xc
