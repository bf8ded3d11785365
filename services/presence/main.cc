// Presence router: sessions, presence broadcast and probes, delivery (RFC 6121 §4, §8).
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/base/clock.h"
#include "core/base/log.h"
#include "core/base/random.h"
#include "core/service/service_runtime.h"
#include "core/service/shutdown.h"
#include "grpcpp/grpcpp.h"
#include "services/presence/gateway_deliverer_grpc.h"
#include "services/presence/gateway_reaper.h"
#include "services/presence/presence_grpc_service.h"
#include "services/presence/presence_router.h"
#include "services/presence/session_directory_redis.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7102", "gRPC listen address");
ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis address host:port");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9102", "admin HTTP: /metrics /livez /readyz");
ABSL_FLAG(int, reap_interval_ms, 1000, "how often dead gateways are looked for");
ABSL_FLAG(bool, probe_answers_last_unavailable, true,
          "answer probes of offline contacts with unavailable + delay");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  xc::InstallShutdownHandlers();
  absl::StatusOr<std::unique_ptr<xc::ServiceRuntime>> runtime = xc::ServiceRuntime::Create(
      "xc_router", absl::GetFlag(FLAGS_redis), absl::GetFlag(FLAGS_admin_listen));
  XC_REQUIRE(runtime.ok()) << runtime.status();
  xc::EventLoop* loop = (*runtime)->loop();
  xc::AsyncRedisClient* redis = (*runtime)->async_redis();
  std::unique_ptr<xc::SessionDirectory> directory = xc::NewRedisSessionDirectory(redis);
  std::unique_ptr<xc::GatewayDeliverer> deliverer =
      xc::NewGrpcGatewayDeliverer((*runtime)->grpc_queue(), redis, (*runtime)->registry());
  xc::PresenceRouterOptions options;
  options.probe_answers_last_unavailable = absl::GetFlag(FLAGS_probe_answers_last_unavailable);
  options.waiting_requests_delivered =
      &(*runtime)->registry()->AddCounter(
          "xc_router_waiting_requests_delivered_total",
          "Waiting subscription requests handed to a resource at its initial presence.").Add({});
  xc::PresenceRouter router(directory.get(), redis, deliverer.get(), xc::RealClock::Get(),
                            options);
  xc::PresenceGrpcService service(&router, (*runtime)->registry());

  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      (*runtime)->StartServer(absl::GetFlag(FLAGS_listen), {&service});
  XC_REQUIRE(server.ok()) << server.status();
  XC_LOG(INFO) << "presence router listening on " << absl::GetFlag(FLAGS_listen);

  xc::metrics::Counter& reaped =
      (*runtime)->registry()->AddCounter("xc_router_reaped_sessions_total",
                                         "Sessions ended because their gateway died.").Add({});
  const std::string owner = xc::RandomId(12);
  std::thread reaper([&] {
    const absl::Duration interval = absl::Milliseconds(absl::GetFlag(FLAGS_reap_interval_ms));
    while (!xc::SleepUnlessShutdown(interval)) {
      absl::StatusOr<int> ended =
          xc::BlockOn(loop, xc::ReapDeadGateways(redis, directory.get(), &router, owner));
      if (!ended.ok()) XC_LOG(WARNING) << "gateway sweep failed: " << ended.status();
      if (ended.ok()) reaped.Increment(*ended);
    }
  });
  xc::WaitForShutdown();
  (*runtime)->Drain(server->get());
  reaper.join();
  (*runtime)->StopLoop();
  XC_LOG(INFO) << "presence router stopped";
  return 0;
}
