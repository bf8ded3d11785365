// Presence router: sessions, presence broadcast and probes, delivery (RFC 6121 §4, §8).
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/base/clock.h"
#include "core/base/log.h"
#include "core/base/random.h"
#include "core/redis/hiredis_client.h"
#include "core/service/shutdown.h"
#include "grpcpp/grpcpp.h"
#include "services/presence/gateway_deliverer_grpc.h"
#include "services/presence/gateway_reaper.h"
#include "services/presence/presence_grpc_service.h"
#include "services/presence/presence_router.h"
#include "services/presence/session_directory_redis.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7102", "gRPC listen address");
ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis address host:port");
ABSL_FLAG(std::string, redis_password, "", "Redis AUTH password (or env XC_REDIS_PASSWORD)");
ABSL_FLAG(int, reap_interval_ms, 1000, "how often dead gateways are looked for");
ABSL_FLAG(bool, probe_answers_last_unavailable, true,
          "answer probes of offline contacts with unavailable + delay");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  xc::InstallShutdownHandlers();
  absl::StatusOr<xc::RedisConnectionOptions> redis_options =
      xc::ParseRedisAddress(absl::GetFlag(FLAGS_redis));
  XC_CHECK(redis_options.ok()) << redis_options.status();
  redis_options->password = absl::GetFlag(FLAGS_redis_password);
  if (const char* env = std::getenv("XC_REDIS_PASSWORD"); env && redis_options->password.empty()) {
    redis_options->password = env;
  }
  std::unique_ptr<xc::RedisClient> redis = xc::NewHiredisClient(*redis_options);
  std::unique_ptr<xc::SessionDirectory> directory = xc::NewRedisSessionDirectory(redis.get());
  std::unique_ptr<xc::GatewayDeliverer> deliverer = xc::NewGrpcGatewayDeliverer(redis.get());
  xc::PresenceRouterOptions options;
  options.probe_answers_last_unavailable = absl::GetFlag(FLAGS_probe_answers_last_unavailable);
  xc::PresenceRouter router(directory.get(), redis.get(), deliverer.get(), xc::RealClock::Get(),
                            options);
  xc::PresenceGrpcService service(&router);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  XC_CHECK(server != nullptr && port != 0) << "cannot listen on " << absl::GetFlag(FLAGS_listen);
  XC_LOG(INFO) << "presence router listening on " << absl::GetFlag(FLAGS_listen);

  const std::string owner = xc::RandomId(12);
  std::thread reaper([&] {
    const absl::Duration interval = absl::Milliseconds(absl::GetFlag(FLAGS_reap_interval_ms));
    while (!xc::SleepUnlessShutdown(interval)) {
      absl::StatusOr<int> ended =
          xc::ReapDeadGateways(redis.get(), directory.get(), &router, owner);
      if (!ended.ok()) XC_LOG(WARNING) << "gateway sweep failed: " << ended.status();
    }
  });
  xc::WaitForShutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  reaper.join();
  XC_LOG(INFO) << "presence router stopped";
  return 0;
}
