#pragma once

#include <memory>
#include <utility>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// The bridge from gRPC's callback API to a service's event loop: a unary handler hands its
// work to the loop (EventLoop::Execute: on gRPC's thread itself when the loop is idle) and
// returns; `make_task()` runs as the loop's work and the call finishes with the task's status.
// The request and response the task uses stay valid until then (gRPC keeps them until Finish).
//
//   grpc::ServerUnaryReactor* Dispatch(grpc::CallbackServerContext* ctx, const Req* req,
//                                      Resp* resp) override {
//     return ServeOnLoop(loop_, ctx, [=] { return Apply(*req, resp); });
//   }
template <typename MakeTask>
grpc::ServerUnaryReactor* ServeOnLoop(EventLoop* loop, grpc::CallbackServerContext* context,
                                      MakeTask make_task) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop->Execute([reactor, make_task = std::move(make_task)]() mutable {
    // `make_task` may be a coroutine lambda, whose captures live in the lambda object: keep it
    // until the task ends.
    auto holder = std::make_shared<MakeTask>(std::move(make_task));
    Spawn((*holder)(), [reactor, holder](grpc::Status status) {
      reactor->Finish(std::move(status));
    });
  });
  return reactor;
}

}  // namespace xc
