#pragma once

#include <memory>
#include <vector>

#include "core/event/event_loop.h"
#include "core/grpc/grpc_queue.h"
#include "core/grpc/serve_on_loop.h"
#include "core/metrics/metrics.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// A gRPC server for tests, set up the way ServiceRuntime sets up a service's: its queue exists
// from construction (so that the services under test can make calls on it), and Start() serves
// QueuedServices on it, on a loopback port. `loop` must be run by a thread of the test.
class TestGrpcServer {
 public:
  explicit TestGrpcServer(EventLoop* loop);
  ~TestGrpcServer();  // Shutdown()
  GrpcQueue* queue() { return queue_.get(); }
  // Builds and starts the server on 127.0.0.1:`port` (0: any free port) with `services`;
  // returns the port, 0 when it could not listen. Once. With `rpc_metrics`, every RPC is
  // counted there (the services' grpc_server_* interceptor).
  int Start(const std::vector<QueuedService*>& services, int port = 0,
            metrics::Registry* rpc_metrics = nullptr);
  // The server stops now (calls in flight are cancelled), then the queue's calls end and it
  // closes. The loop must be running.
  void Shutdown();

 private:
  EventLoop* const loop_;
  std::unique_ptr<grpc::ServerBuilder> builder_;
  std::unique_ptr<GrpcQueue> queue_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace xc
