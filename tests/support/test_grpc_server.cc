#include "tests/support/test_grpc_server.h"

#include <chrono>
#include <string>

#include "absl/synchronization/notification.h"
#include "core/metrics/grpc_server_metrics.h"

namespace xc {

TestGrpcServer::TestGrpcServer(EventLoop* loop)
    : loop_(loop), builder_(std::make_unique<grpc::ServerBuilder>()) {
  queue_ = std::make_unique<GrpcQueue>(loop, builder_->AddCompletionQueue());
}

TestGrpcServer::~TestGrpcServer() { Shutdown(); }

int TestGrpcServer::Start(const std::vector<QueuedService*>& services, int port,
                          metrics::Registry* rpc_metrics) {
  int bound = 0;
  builder_->AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &bound);
  for (QueuedService* s : services) builder_->RegisterService(s->grpc_service());
  if (rpc_metrics != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(metrics::NewGrpcServerMetrics(rpc_metrics));
    builder_->experimental().SetInterceptorCreators(std::move(creators));
  }
  server_ = builder_->BuildAndStart();
  if (server_ == nullptr) return 0;
  absl::Notification served;
  loop_->Post([&] {
    for (QueuedService* s : services) s->Serve(queue_.get());
    served.Notify();
  });
  served.WaitForNotification();
  return bound;
}

void TestGrpcServer::Shutdown() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
  queue_->Shutdown();
}

}  // namespace xc
