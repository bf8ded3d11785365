#pragma once

#include <functional>
#include <memory>
#include <utility>

#include "core/grpc/grpc_queue.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// How a caller hands a unary call's request over and learns its outcome: `done(status)` runs
// on the loop once the call has completed, `response` filled when the status is OK. The
// context and the response stay valid until then; the request may be consumed at once.
template <typename Request, typename Response>
using StartUnaryFn = std::function<void(grpc::ClientContext*, Request*, Response*,
                                        std::function<void(grpc::Status)>)>;

namespace internal {

// A call the queue refused (it is closing): `done` gets UNAVAILABLE on the loop, after the
// caller's turn, as a call that fails at once would.
inline void RefuseCall(GrpcQueue* queue, std::function<void(grpc::Status)> done) {
  queue->loop()->Post([done = std::move(done)] {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
  });
}

template <typename Response>
class UnaryClientCall final : public GrpcOp {
 public:
  UnaryClientCall(GrpcQueue* queue, grpc::ClientContext* context,
                  std::function<void(grpc::Status)> done)
      : queue_(queue), context_(context), done_(std::move(done)) {}

  void Done(bool) override {
    // Finish's tag always completes with ok; the outcome is in `status`.
    GrpcQueue* queue = queue_;
    grpc::ClientContext* context = context_;
    std::function<void(grpc::Status)> done = std::move(done_);
    grpc::Status outcome = std::move(status);
    delete this;
    queue->Leave(context);  // before `done`, which may free the context
    done(std::move(outcome));
  }

  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
  grpc::Status status;

 private:
  GrpcQueue* const queue_;
  grpc::ClientContext* const context_;
  std::function<void(grpc::Status)> done_;
};

}  // namespace internal

// A unary method's StartUnaryFn on `queue`, from a stub's PrepareAsync method bound in
// `prepare(context, request, cq)`:
//
//   UnaryStart<Req, Resp>(queue, [stub](grpc::ClientContext* c, const Req& r,
//                                       grpc::CompletionQueue* cq) {
//     return stub->PrepareAsyncMethod(c, r, cq);
//   });
//
// Once the queue is closing, calls fail with UNAVAILABLE (posted to the loop).
template <typename Request, typename Response, typename Prepare>
StartUnaryFn<Request, Response> UnaryStart(GrpcQueue* queue, Prepare prepare) {
  return [queue, prepare = std::move(prepare)](grpc::ClientContext* context, Request* request,
                                               Response* response,
                                               std::function<void(grpc::Status)> done) {
    if (!queue->Enter(context)) return internal::RefuseCall(queue, std::move(done));
    auto* call = new internal::UnaryClientCall<Response>(queue, context, std::move(done));
    call->reader = prepare(context, *request, queue->cq());
    call->reader->StartCall();
    call->reader->Finish(response, &call->status, call);
  };
}

}  // namespace xc
