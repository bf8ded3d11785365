#include "core/service/service_runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"
#include "core/metrics/grpc_server_metrics.h"
#include "core/redis/blocking_redis_client.h"
#include "core/redis/hiredis_client.h"
#include "core/redis/instrumented_redis_client.h"
#include "core/redis/redis_cluster_client.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"

namespace xc {

namespace {

// How work from gRPC's threads reached the loop (EventLoop::Execute): `inline` when the gRPC
// thread ran the loop's turn itself, `posted` when it woke (or queued behind) the loop thread.
void CountExecutes(EventLoop* loop, metrics::Registry* registry, const std::string& prefix) {
  metrics::Family<metrics::Counter>& family = registry->AddCounter(
      prefix + "_loop_executes_total",
      "Work handed to the event loop from other threads, by whether the handing thread ran the "
      "loop's turn itself (inline) or left it to the loop thread (posted)");
  metrics::Counter* inline_turns = &family.Add({{"path", "inline"}});
  metrics::Counter* posted = &family.Add({{"path", "posted"}});
  registry->AddScrapeHook(
      [loop, inline_turns, posted, seen = EventLoop::ExecuteCounts{}]() mutable {
        const EventLoop::ExecuteCounts now = loop->execute_counts();
        inline_turns->Increment(static_cast<double>(now.inline_turns - seen.inline_turns));
        posted->Increment(static_cast<double>(now.posted - seen.posted));
        seen = now;
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServiceRuntime>> ServiceRuntime::Create(
    const std::string& prefix, const std::string& redis_address, const std::string& admin_address) {
  // Debian builds abseil without NDEBUG, which turns on absl::Mutex's deadlock detector: a
  // global graph lookup on every lock, and gRPC locks a lot (seen at the top of a profile).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::unique_ptr<ServiceRuntime> rt(new ServiceRuntime());
  // Redis ACL user and password (docs/deployment.md: one user per service).
  RedisConnectionOptions options;
  if (const char* env = std::getenv("XC_REDIS_PASSWORD")) options.password = env;
  if (const char* env = std::getenv("XC_REDIS_USER")) options.user = env;
  // "host:port" (standalone) or "cluster://host:port,..." (Redis Cluster).
  rt->loop_ = std::make_unique<EventLoop>();
  absl::StatusOr<std::unique_ptr<AsyncRedisClient>> redis =
      ConnectAsyncRedis(rt->loop_.get(), redis_address, options);
  if (!redis.ok()) return redis.status();
  rt->async_redis_ =
      std::make_unique<InstrumentedRedisClient>(*std::move(redis), &rt->registry_, prefix);
  rt->redis_ = NewBlockingRedisClient(rt->async_redis_.get());
  rt->loop_thread_ = std::thread([loop = rt->loop_.get()] { loop->Run(); });
  rt->builder_ = std::make_unique<grpc::ServerBuilder>();
  rt->grpc_queue_ =
      std::make_unique<GrpcQueue>(rt->loop_.get(), rt->builder_->AddCompletionQueue());
  metrics::AddBuildInfo(&rt->registry_, prefix);
  CountExecutes(rt->loop_.get(), &rt->registry_, prefix);
  if (!admin_address.empty()) {
    ServiceRuntime* raw = rt.get();
    absl::StatusOr<std::unique_ptr<metrics::Exposer>> exposer =
        metrics::Exposer::Start(admin_address, &rt->registry_, [raw] { return raw->Ready(); });
    if (!exposer.ok()) return exposer.status();
    rt->exposer_ = *std::move(exposer);
  }
  return rt;
}

void ServiceRuntime::Configure(grpc::ServerBuilder* builder) {
  // Not gRPC's default health service: it runs on the callback API (see HealthService).
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(metrics::NewGrpcServerMetrics(&registry_));
  builder->experimental().SetInterceptorCreators(std::move(creators));
  // Clients balance round_robin over the addresses of a headless Service and re-resolve only
  // when a connection ends: closing connections after a few minutes (GOAWAY, calls in flight
  // finish) makes them discover pods added since, so new replicas take load.
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 5 * 60 * 1000);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // gRPC binds with SO_REUSEPORT by default: a second process started on the same port would
  // silently take half of the connections. Without it the second one fails to start, loudly.
  builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 30 * 1000);
}

absl::StatusOr<std::unique_ptr<grpc::Server>> ServiceRuntime::StartServer(
    const std::string& address, const std::vector<QueuedService*>& services) {
  XC_CHECK(builder_ != nullptr) << "one gRPC server per process";
  std::unique_ptr<grpc::ServerBuilder> builder = std::move(builder_);
  int port = 0;
  builder->AddListeningPort(address, ServiceServerCredentials(), &port);
  builder->RegisterService(health_.grpc_service());
  for (QueuedService* service : services) builder->RegisterService(service->grpc_service());
  Configure(builder.get());
  std::unique_ptr<grpc::Server> server = builder->BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError("cannot listen on " + address);
  }
  // Requested from the loop, where the calls' completions run.
  absl::Notification served;
  loop_->Post([&] {
    health_.Serve(grpc_queue_.get());
    for (QueuedService* service : services) service->Serve(grpc_queue_.get());
    served.Notify();
  });
  served.WaitForNotification();
  health_.SetServing(Ready());
  health_thread_ = std::thread([this] { WatchHealth(absl::Seconds(1)); });
  return server;
}

void ServiceRuntime::WatchHealth(absl::Duration interval) {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval)) break;
    mu_.Unlock();
    const bool ready = Ready();  // a Redis round trip: outside the lock
    mu_.Lock();
    // Under the lock: once Drain() has said NOT_SERVING, nothing says otherwise.
    health_.SetServing(ready && !draining_);
  }
}

ServiceRuntime::~ServiceRuntime() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (health_thread_.joinable()) health_thread_.join();
  exposer_.reset();
  redis_.reset();
  StopLoop();
  async_redis_.reset();  // the loop no longer runs: its connections go on this thread
}

void ServiceRuntime::StopLoop() {
  if (!loop_thread_.joinable()) return;
  loop_->Stop();
  loop_thread_.join();
}

void ServiceRuntime::Drain(grpc::Server* server, absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    StartDraining();
    health_.SetServing(false);
  }
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
  // Served calls are over; the process's own calls (streams to the other services) are
  // cancelled, and the queue closes once every call has ended.
  grpc_queue_->Shutdown();
}

bool ServiceRuntime::Ready() {
  if (draining_) return false;
  absl::StatusOr<RedisReply> pong = redis_->Command({"PING"});
  return pong.ok();
}

}  // namespace xc
