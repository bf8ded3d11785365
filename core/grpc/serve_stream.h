#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/metrics/grpc_server_metrics.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/server_callback.h"

namespace xc {

// The server side of StreamCalls (core/grpc/stream_calls.h): a bidirectional stream whose
// every frame is one unary-shaped call. Each frame's request runs as the loop's work exactly
// as ServeOnLoop runs a unary call's (EventLoop::Execute), the next frame is read meanwhile,
// and each answer leaves with its frame's id as soon as its task ends (one write at a time,
// the rest queued). When the client half-closes (or goes away) the stream ends once every
// task has ended. `metrics` (may be null) counts each frame as a call of the unary method.
//
//   grpc::ServerBidiReactor<Frame, Reply>* MethodStream(grpc::CallbackServerContext*) override {
//     return ServeStreamOnLoop<Frame, Reply>(loop_, metrics_,
//         [this](const Request& req, Response* resp) { return Apply(req, resp); });
//   }
template <typename Frame, typename Reply, typename Handler>
grpc::ServerBidiReactor<Frame, Reply>* ServeStreamOnLoop(EventLoop* loop,
                                                         const metrics::CallMetrics* metrics,
                                                         Handler handler);

namespace internal {

template <typename Frame, typename Reply, typename Handler>
class StreamServer final : public grpc::ServerBidiReactor<Frame, Reply> {
 public:
  using Request = std::remove_cvref_t<decltype(std::declval<Frame>().request())>;
  using Response = std::remove_cvref_t<decltype(std::declval<Reply>().response())>;

  StreamServer(EventLoop* loop, const metrics::CallMetrics* metrics, Handler handler)
      : loop_(loop), metrics_(metrics), handler_(std::move(handler)) {
    this->StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      bool finish = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        reads_done_ = true;
        finish = MayFinishLocked();
      }
      if (finish) this->Finish(grpc::Status::OK);
      return;
    }
    auto work = std::make_shared<Work>();
    work->id = in_.id();
    work->request.Swap(in_.mutable_request());
    work->start_ns = EventLoop::NowNanos();
    if (metrics_ != nullptr) metrics_->Started();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++running_;
    }
    in_.Clear();
    this->StartRead(&in_);
    loop_->Execute([this, work] {
      Spawn(handler_(work->request, &work->response),
            [this, work](grpc::Status status) { Answer(*work, std::move(status)); });
    });
  }

  void OnWriteDone(bool ok) override {
    Reply* next = nullptr;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writes_.pop_front();
      if (!ok) {
        broken_ = true;  // the client is gone: later answers are dropped
        writes_.clear();
      }
      if (!writes_.empty()) {
        next = &writes_.front();
      } else {
        writing_ = false;
        finish = MayFinishLocked();
      }
    }
    if (next != nullptr) this->StartWrite(next);
    if (finish) this->Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  struct Work {
    uint64_t id = 0;
    Request request;
    Response response;
    int64_t start_ns = 0;
  };

  void Answer(Work& work, grpc::Status status) {
    if (metrics_ != nullptr) {
      metrics_->Handled(status.error_code(),
                        static_cast<double>(EventLoop::NowNanos() - work.start_ns) * 1e-9);
    }
    Reply* write = nullptr;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      if (!broken_) {
        Reply& reply = writes_.emplace_back();
        reply.set_id(work.id);
        if (status.ok()) {
          reply.mutable_response()->Swap(&work.response);
        } else {
          reply.set_code(static_cast<int>(status.error_code()));
          reply.set_message(status.error_message());
        }
        if (!writing_) {
          writing_ = true;
          write = &writes_.front();
        }
      } else {
        finish = MayFinishLocked();
      }
    }
    if (write != nullptr) this->StartWrite(write);
    if (finish) this->Finish(grpc::Status::OK);
  }

  // Reads ended, no task running, nothing being written, not finished yet.
  bool MayFinishLocked() {
    if (!reads_done_ || running_ > 0 || writing_ || finished_) return false;
    finished_ = true;
    return true;
  }

  EventLoop* const loop_;
  const metrics::CallMetrics* const metrics_;
  Handler handler_;
  Frame in_;
  std::mutex mu_;
  std::deque<Reply> writes_;  // front: being written
  bool writing_ = false;
  int running_ = 0;
  bool reads_done_ = false;
  bool broken_ = false;
  bool finished_ = false;
};

}  // namespace internal

template <typename Frame, typename Reply, typename Handler>
grpc::ServerBidiReactor<Frame, Reply>* ServeStreamOnLoop(EventLoop* loop,
                                                         const metrics::CallMetrics* metrics,
                                                         Handler handler) {
  return new internal::StreamServer<Frame, Reply, Handler>(loop, metrics, std::move(handler));
}

}  // namespace xc
