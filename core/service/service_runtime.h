#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "absl/status/statusor.h"
#include "core/event/event_loop.h"
#include "core/metrics/exposer.h"
#include "core/metrics/metrics.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/redis_client.h"
#include "grpcpp/grpcpp.h"

namespace xc {

// What every service main shares: a metrics registry, the admin HTTP port (/metrics, /livez,
// /readyz), the service's event loop (its own thread: the service's logic, its Redis
// connections and its outgoing calls all run there), the Redis client on that loop
// (instrumented) with a blocking face for other threads, and readiness (Redis answers and not
// draining).
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
  // Adds the gRPC interceptor, health service and reflection to a server being built.
  void Configure(grpc::ServerBuilder* builder);
  // After the server started: health SERVING; on drain NOT_SERVING.
  void SetServing(grpc::Server* server, bool serving);
  ~ServiceRuntime();
  bool Ready();
  void StartDraining() { draining_ = true; }
  // Builds and starts a gRPC server on `address` with `services` (plus metrics, health and
  // reflection), marks it serving; then, after Serve() returns from WaitForShutdown, drains:
  // not ready, NOT_SERVING, and stops within `grace`.
  absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
      const std::string& address, const std::vector<grpc::Service*>& services);
  void Drain(grpc::Server* server, absl::Duration grace = absl::Seconds(5));
  // Runs what is posted, then stops the loop and joins its thread. Call it before destroying
  // anything the loop's callbacks use (after Drain: draining calls need the loop).
  void StopLoop();

 private:
  ServiceRuntime() = default;
  // Every `interval`, gRPC health follows readiness: NOT_SERVING while Redis does not answer
  // (load balancers and health checks route around the process), SERVING again once it does.
  void WatchHealth(absl::Duration interval);
  metrics::Registry registry_;
  std::unique_ptr<EventLoop> loop_;
  std::thread loop_thread_;
  std::unique_ptr<AsyncRedisClient> async_redis_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<metrics::Exposer> exposer_;
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  std::vector<grpc::Server*> servers_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread health_thread_;
};

}  // namespace xc
