#pragma once

#include <atomic>
#include <unordered_set>

#include "core/grpc/grpc_queue.h"
#include "core/grpc/serve_on_loop.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace xc {

// grpc.health.v1.Health on the process's GrpcQueue, in place of gRPC's default health service
// (which runs on the callback API, whose threads would poll beside the queue's). One status
// for the whole server, under the service name "" (what Kubernetes and grpc_health_probe ask
// by default); any other name is unknown (NOT_FOUND for Check, SERVICE_UNKNOWN for Watch).
// Check answers the status; Watch sends it at once and again at every change.
class HealthService final : public QueuedService {
 public:
  grpc::Service* grpc_service() override { return &async_; }
  void Serve(GrpcQueue* queue) override;
  // Any thread. Watchers hear of a change on the loop.
  void SetServing(bool serving);

 private:
  class Watch;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  Status StatusOf(const std::string& service) const;
  void Notify();  // loop thread: every watcher of "" gets the current status

  grpc::health::v1::Health::AsyncService async_;
  GrpcQueue* queue_ = nullptr;
  std::atomic<bool> serving_{false};
  std::unordered_set<Watch*> watchers_;  // loop thread
};

}  // namespace xc
