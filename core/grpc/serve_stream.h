#pragma once

#include <deque>
#include <memory>
#include <type_traits>
#include <utility>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/grpc/grpc_queue.h"
#include "core/grpc/serve_on_loop.h"
#include "core/metrics/grpc_server_metrics.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// A generated AsyncService's RequestMethod for a bidirectional streaming method.
template <typename Base, typename Frame, typename Reply>
using RequestStreamFn = void (Base::*)(grpc::ServerContext*,
                                       grpc::ServerAsyncReaderWriter<Reply, Frame>*,
                                       grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

namespace internal {

template <typename Service, typename Base, typename Frame, typename Reply, typename Handler>
struct StreamMethod {
  GrpcQueue* queue;
  Service* service;
  RequestStreamFn<Base, Frame, Reply> request_call;
  const metrics::CallMetrics* metrics;
  Handler handler;
};

// One stream: frames are read one after another; each frame's request runs as a task on the
// loop while the next is read, and each answer is written with its frame's id as soon as its
// task ends (one write at a time, the rest queued). When the client half-closes or goes away,
// the stream finishes once every task has ended and every answer is written. Everything here
// runs on the loop; the call deletes itself once nothing of it is in flight.
template <typename Method, typename Frame, typename Reply>
class StreamCall {
 public:
  using Request = std::remove_cvref_t<decltype(std::declval<Frame>().request())>;
  using Response = std::remove_cvref_t<decltype(std::declval<Reply>().response())>;

  static bool Accept(std::shared_ptr<Method> method) {
    if (!method->queue->Enter()) return false;
    auto* call = new StreamCall(std::move(method));
    Method& m = *call->method_;
    ++call->ops_;
    (m.service->*m.request_call)(&call->context_, &call->stream_, m.queue->cq(),
                                 m.queue->server_cq(), &call->arrived_);
    return true;
  }

 private:
  struct Work {
    uint64_t id = 0;
    Request request;
    Response response;
    int64_t start_ns = 0;
  };

  explicit StreamCall(std::shared_ptr<Method> method)
      : method_(std::move(method)), stream_(&context_) {}

  void OnArrived(bool ok) {
    --ops_;
    if (!ok) return MaybeDelete();  // the server is shutting down
    arrived_ok_ = true;
    Accept(method_);
    ReadNext();
  }

  void ReadNext() {
    ++ops_;
    stream_.Read(&in_, &read_);
  }

  void OnRead(bool ok) {
    --ops_;
    if (!ok) {  // half-closed, or gone
      reads_done_ = true;
      return MaybeFinish();
    }
    auto work = std::make_shared<Work>();
    work->id = in_.id();
    work->request.Swap(in_.mutable_request());
    work->start_ns = EventLoop::NowNanos();
    if (method_->metrics != nullptr) method_->metrics->Started();
    in_.Clear();
    ReadNext();
    ++running_;
    Spawn(method_->handler(work->request, &work->response),
          [this, work](grpc::Status status) { Answer(*work, std::move(status)); });
  }

  void Answer(Work& work, grpc::Status status) {
    --running_;
    if (method_->metrics != nullptr) {
      method_->metrics->Handled(status.error_code(),
                                static_cast<double>(EventLoop::NowNanos() - work.start_ns) * 1e-9);
    }
    if (broken_) return MaybeFinish();  // the client is gone: the answer is dropped
    Reply& reply = writes_.emplace_back();
    reply.set_id(work.id);
    if (status.ok()) {
      reply.mutable_response()->Swap(&work.response);
    } else {
      reply.set_code(static_cast<int>(status.error_code()));
      reply.set_message(status.error_message());
    }
    if (!writing_) WriteFront();
  }

  void WriteFront() {
    writing_ = true;
    ++ops_;
    stream_.Write(writes_.front(), &wrote_);
  }

  void OnWrote(bool ok) {
    --ops_;
    writes_.pop_front();
    writing_ = false;
    if (!ok) {
      broken_ = true;
      writes_.clear();
    }
    if (!writes_.empty()) return WriteFront();
    MaybeFinish();
  }

  // Reads ended, no task running, nothing being written: the stream ends (once).
  void MaybeFinish() {
    if (reads_done_ && running_ == 0 && !writing_ && !finish_started_) {
      finish_started_ = true;
      ++ops_;
      stream_.Finish(grpc::Status::OK, &finished_);
      return;
    }
    MaybeDelete();
  }

  void OnFinished(bool) {
    --ops_;
    MaybeDelete();
  }

  void MaybeDelete() {
    if (ops_ > 0 || running_ > 0) return;
    if (arrived_ok_ && !finish_started_) return;  // still to finish
    GrpcQueue* queue = method_->queue;
    delete this;
    queue->Leave();
  }

  std::shared_ptr<Method> method_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<Reply, Frame> stream_;
  BoundOp<StreamCall> arrived_{this, &StreamCall::OnArrived};
  BoundOp<StreamCall> read_{this, &StreamCall::OnRead};
  BoundOp<StreamCall> wrote_{this, &StreamCall::OnWrote};
  BoundOp<StreamCall> finished_{this, &StreamCall::OnFinished};
  Frame in_;
  std::deque<Reply> writes_;  // front: being written
  int ops_ = 0;               // operations on the queue
  int running_ = 0;           // tasks not yet answered
  bool arrived_ok_ = false;
  bool writing_ = false;
  bool reads_done_ = false;
  bool broken_ = false;
  bool finish_started_ = false;
};

}  // namespace internal

// Serves a stream method whose every frame (Frame: id, request) is one unary-shaped call,
// answered by a Reply (id, code, message, response) in completion order: the server side of
// StreamCalls (core/grpc/stream_calls.h). Each frame runs `handler(request, response)`
// (Task<grpc::Status>) on the loop exactly as ServeUnary runs a unary call. `metrics` (may be
// null; must outlive the server) counts each frame as a call of the unary method it stands for.
template <typename Service, typename Base, typename Frame, typename Reply, typename Handler>
void ServeStream(GrpcQueue* queue, Service* service,
                 RequestStreamFn<Base, Frame, Reply> request_call,
                 const metrics::CallMetrics* metrics, Handler handler) {
  using Method = internal::StreamMethod<Service, Base, Frame, Reply, Handler>;
  auto method =
      std::make_shared<Method>(Method{queue, service, request_call, metrics, std::move(handler)});
  internal::StreamCall<Method, Frame, Reply>::Accept(std::move(method));
}

}  // namespace xc
