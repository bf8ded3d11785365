// Roster service: rosters and the subscription state machine (RFC 6121 §2, §3).
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"
#include "core/service/service_runtime.h"
#include "core/service/shutdown.h"
#include "grpcpp/grpcpp.h"
#include "services/roster/roster_grpc_service.h"
#include "services/roster/roster_processor.h"
#include "services/roster/roster_store_redis.h"
#include "services/roster/waiting_census.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7101", "gRPC listen address");
ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis address host:port");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9101", "admin HTTP: /metrics /livez /readyz");
ABSL_FLAG(std::string, router, "127.0.0.1:7102", "presence router gRPC target");
ABSL_FLAG(int, max_roster_items, 2000, "roster size limit per user");
ABSL_FLAG(int, max_pending_requests, 500, "stored subscription requests per user");
ABSL_FLAG(absl::Duration, waiting_census_interval, absl::Seconds(60),
          "how often to count the cluster's waiting subscription requests for the "
          "xc_roster_waiting_requests gauge (a SCAN of the keyspace); 0 turns it off");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  xc::InstallShutdownHandlers();
  absl::StatusOr<std::unique_ptr<xc::ServiceRuntime>> runtime = xc::ServiceRuntime::Create(
      "xc_roster", absl::GetFlag(FLAGS_redis), absl::GetFlag(FLAGS_admin_listen));
  XC_REQUIRE(runtime.ok()) << runtime.status();
  xc::RedisClient* redis = (*runtime)->redis();
  const bool single_node = !absl::StartsWith(absl::GetFlag(FLAGS_redis), "cluster://");
  std::unique_ptr<xc::RosterStore> store =
      xc::NewRedisRosterStore((*runtime)->async_redis(), single_node);
  xc::RosterLimits limits;
  limits.max_items = static_cast<size_t>(absl::GetFlag(FLAGS_max_roster_items));
  limits.max_pending = static_cast<size_t>(absl::GetFlag(FLAGS_max_pending_requests));
  xc::RosterProcessor processor(store.get(), limits);
  auto router = xmpp::presence::v1::PresenceRouter::NewStub(
      xc::NewServiceChannel(absl::GetFlag(FLAGS_router)));
  xc::RosterConsistency consistency(store.get(), &processor);
  xc::RosterGrpcService service((*runtime)->grpc_queue(), &processor, &consistency, router.get(),
                                (*runtime)->registry(), xc::UseGrpcStreams());
  std::unique_ptr<xc::WaitingCensus> census;
  if (absl::GetFlag(FLAGS_waiting_census_interval) > absl::ZeroDuration()) {
    census = std::make_unique<xc::WaitingCensus>(redis, (*runtime)->registry(),
                                                 absl::GetFlag(FLAGS_waiting_census_interval));
  }

  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      (*runtime)->StartServer(absl::GetFlag(FLAGS_listen), {&service});
  XC_REQUIRE(server.ok()) << server.status();
  XC_LOG(INFO) << "roster service listening on " << absl::GetFlag(FLAGS_listen);
  xc::WaitForShutdown();
  (*runtime)->Drain(server->get());  // the router streams too: before the loop stops
  (*runtime)->StopLoop();
  census.reset();
  XC_LOG(INFO) << "roster service stopped";
  return 0;
}
