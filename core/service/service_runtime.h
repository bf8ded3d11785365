#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/event/event_loop.h"
#include "core/grpc/grpc_queue.h"
#include "core/grpc/health_service.h"
#include "core/grpc/serve_on_loop.h"
#include "core/metrics/exposer.h"
#include "core/metrics/metrics.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/redis_client.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// What every service main shares: a metrics registry, the admin HTTP port (/metrics, /livez,
// /readyz), the service's event loop (its own thread: the service's logic, its Redis
// connections and its outgoing calls all run there), the gRPC queue every call of the process
// completes on (its own thread, handing each completion to the loop), the Redis client on the
// loop (instrumented) with a blocking face for other threads, and readiness (Redis answers and
// not draining).
class ServiceRuntime {
 public:
  // `prefix` names the service's metrics ("xc_roster"); `redis_address` is host:port.
  static absl::StatusOr<std::unique_ptr<ServiceRuntime>> Create(const std::string& prefix,
                                                                const std::string& redis_address,
                                                                const std::string& admin_address);
  metrics::Registry* registry() { return &registry_; }
  EventLoop* loop() { return loop_.get(); }
  // On loop(): for the service's coroutines.
  AsyncRedisClient* async_redis() { return async_redis_.get(); }
  // The same connection for threads that are not the loop's (sweeps, heartbeats, workers).
  RedisClient* redis() { return redis_.get(); }
  // Every gRPC call of the process, served or made, completes here (core/grpc/grpc_queue.h):
  // the clients' calls and streams take it, the server's services are served on it.
  GrpcQueue* grpc_queue() { return grpc_queue_.get(); }
  ~ServiceRuntime();
  bool Ready();
  void StartDraining() { draining_ = true; }
  // Builds and starts the process's gRPC server on `address`, its `services` (plus health,
  // reflection and the server metrics) served on grpc_queue(), and marks it serving. Once.
  absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
      const std::string& address, const std::vector<QueuedService*>& services);
  // After WaitForShutdown: not ready, NOT_SERVING, the server stops within `grace`, then the
  // process's own calls are cancelled and the gRPC queue closes. The loop must still run.
  void Drain(grpc::Server* server, absl::Duration grace = absl::Seconds(5));
  // Runs what is posted, then stops the loop and joins its thread. Call it before destroying
  // anything the loop's callbacks use (after Drain: draining calls need the loop).
  void StopLoop();

 private:
  ServiceRuntime() = default;
  // Adds the server metrics interceptor, reflection and channel options to the server being
  // built.
  void Configure(grpc::ServerBuilder* builder);
  // Every `interval`, gRPC health follows readiness: NOT_SERVING while Redis does not answer
  // (load balancers and health checks route around the process), SERVING again once it does.
  void WatchHealth(absl::Duration interval);
  metrics::Registry registry_;
  std::unique_ptr<EventLoop> loop_;
  std::thread loop_thread_;
  // The server being built (from Create, so that the queue exists before the server does),
  // until StartServer.
  std::unique_ptr<grpc::ServerBuilder> builder_;
  std::unique_ptr<GrpcQueue> grpc_queue_;  // after loop_: goes before it
  HealthService health_;
  std::unique_ptr<AsyncRedisClient> async_redis_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<metrics::Exposer> exposer_;
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread health_thread_;
};

}  // namespace xc
