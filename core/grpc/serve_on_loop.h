#pragma once

#include <memory>
#include <utility>

#include "core/async/task.h"
#include "core/grpc/grpc_queue.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// A gRPC service whose calls are served on a GrpcQueue (the async API): its AsyncService is
// registered with the server being built, and once the server has started, Serve() requests
// its calls on the queue.
class QueuedService {
 public:
  virtual ~QueuedService() = default;
  virtual grpc::Service* grpc_service() = 0;
  // Once, after the server started; the queue's loop thread or before the loop runs.
  virtual void Serve(GrpcQueue* queue) = 0;
};

// A generated AsyncService's RequestMethod for a unary method.
template <typename Base, typename Request, typename Response>
using RequestUnaryFn = void (Base::*)(grpc::ServerContext*, Request*,
                                      grpc::ServerAsyncResponseWriter<Response>*,
                                      grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

namespace internal {

// One method: what every call of it shares.
template <typename Service, typename Base, typename Request, typename Response, typename Handler>
struct UnaryMethod {
  GrpcQueue* queue;
  Service* service;
  RequestUnaryFn<Base, Request, Response> request_call;
  Handler handler;
};

// One call: requested, then (when it arrives) the next one is requested, the handler runs as a
// task on the loop, and the call finishes with the task's status.
template <typename Method, typename Request, typename Response>
class UnaryCall final : public GrpcOp {
 public:
  // Asks for the next call of `method`; false (nothing requested) once the queue is closing.
  static bool Accept(std::shared_ptr<Method> method) {
    if (!method->queue->Enter()) return false;
    auto* call = new UnaryCall(std::move(method));
    Method& m = *call->method_;
    (m.service->*m.request_call)(&call->context_, &call->request_, &call->writer_, m.queue->cq(),
                                 m.queue->server_cq(), call);
    return true;
  }

  void Done(bool ok) override {
    if (!ok || finishing_) {  // not arrived (the server is shutting down), or finished
      GrpcQueue* queue = method_->queue;
      delete this;
      queue->Leave();
      return;
    }
    Accept(method_);
    Spawn(method_->handler(request_, &response_), [this](grpc::Status status) {
      finishing_ = true;
      if (status.ok()) {
        writer_.Finish(response_, status, this);
      } else {
        writer_.FinishWithError(status, this);
      }
    });
  }

 private:
  explicit UnaryCall(std::shared_ptr<Method> method)
      : method_(std::move(method)), writer_(&context_) {}

  std::shared_ptr<Method> method_;  // shared by the method's calls: the handler lives here
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> writer_;
  bool finishing_ = false;
};

}  // namespace internal

// Serves one unary method on `queue`: every call runs `handler(request, response)` (returning
// Task<grpc::Status>, on the loop; `response` is what the call answers with an OK status) and
// finishes with its status. Call from QueuedService::Serve.
//
//   ServeUnary(queue, &async_, &Svc::AsyncService::RequestGet,
//              [this](const GetRequest& req, GetResponse* resp) { return Get(req, resp); });
template <typename Service, typename Base, typename Request, typename Response, typename Handler>
void ServeUnary(GrpcQueue* queue, Service* service,
                RequestUnaryFn<Base, Request, Response> request_call, Handler handler) {
  using Method = internal::UnaryMethod<Service, Base, Request, Response, Handler>;
  auto method = std::make_shared<Method>(Method{queue, service, request_call, std::move(handler)});
  internal::UnaryCall<Method, Request, Response>::Accept(std::move(method));
}

}  // namespace xc
