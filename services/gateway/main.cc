// Edge gateway: terminates XMPP client streams and forwards stanzas to the services over gRPC.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "core/base/log.h"
#include "core/base/random.h"
#include "core/grpc/call_batcher.h"
#include "core/grpc/grpc_util.h"
#include "core/grpc/stream_calls.h"
#include "core/grpc/unary_call.h"
#include "core/jid/jid.h"
#include "core/service/service_runtime.h"
#include "core/service/shutdown.h"
#include "core/store/account_store.h"
#include "grpcpp/grpcpp.h"
#include "services/gateway/gateway_server.h"

ABSL_FLAG(std::string, id, "", "gateway id (default: random)");
ABSL_FLAG(std::string, listen, "127.0.0.1:5222", "XMPP client listen address host:port");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:7201", "Deliver endpoint listen address");
ABSL_FLAG(std::string, advertise, "", "Deliver address the router dials (default: grpc_listen)");
ABSL_FLAG(std::string, domains, "localhost", "served XMPP domains, comma-separated");
ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis address host:port");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9201", "admin HTTP: /metrics /livez /readyz");
ABSL_FLAG(std::string, roster, "127.0.0.1:7101", "roster service gRPC target");
ABSL_FLAG(std::string, router, "127.0.0.1:7102", "presence router gRPC target");
ABSL_FLAG(bool, allow_plaintext, false,
          "allow SASL without TLS (loopback development only; RFC 6120 §13.8.3)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain for STARTTLS (empty: no TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for STARTTLS");
ABSL_FLAG(bool, tls_required, true, "with TLS configured, require STARTTLS before anything else");
ABSL_FLAG(std::string, listen_tls, "",
          "optional direct-TLS listen address host:port (XEP-0368; needs --tls_cert)");
ABSL_FLAG(bool, channel_binding, true,
          "offer SCRAM-SHA-256-PLUS / SCRAM-SHA-1-PLUS (tls-exporter, tls-unique) inside TLS");
ABSL_FLAG(int, heartbeat_ttl_ms, 3000, "heartbeat key TTL; the router reaps after it expires");
ABSL_FLAG(int, max_stanza_bytes, 256 * 1024, "largest stanza after authentication");
ABSL_FLAG(int, max_auth_attempts, 3, "failed SASL attempts before policy-violation");
ABSL_FLAG(int, max_connections_per_ip, 1000, "open client connections per source address");
ABSL_FLAG(int, pre_auth_timeout_s, 30, "seconds a stream may take to authenticate and bind");
ABSL_FLAG(int, max_queued_bytes, 4 * 1024 * 1024,
          "unsent bytes per session before a slow reader is disconnected");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  xc::InstallShutdownHandlers();

  xc::GatewayConfig config;
  config.id = absl::GetFlag(FLAGS_id).empty() ? xc::RandomId(10) : absl::GetFlag(FLAGS_id);
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_domains), ',', absl::SkipEmpty())) {
    absl::StatusOr<std::string> domain = xc::PrepareDomainpart(d);
    XC_REQUIRE(domain.ok()) << "bad domain '" << d << "': " << domain.status();
    config.domains.push_back(*domain);
  }
  XC_REQUIRE(!config.domains.empty()) << "--domains is empty";
  config.allow_plaintext = absl::GetFlag(FLAGS_allow_plaintext);
  config.tls_required = absl::GetFlag(FLAGS_tls_required);
  config.channel_binding = absl::GetFlag(FLAGS_channel_binding);
  void* tls_context = nullptr;
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    absl::StatusOr<void*> tls =
        xc::NewTlsServerContext(absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key));
    XC_REQUIRE(tls.ok()) << tls.status();
    tls_context = *tls;
  } else {
    XC_REQUIRE(config.allow_plaintext)
        << "no --tls_cert: give a certificate, or --allow_plaintext for loopback development";
  }
  absl::StatusOr<void*> sasl_context = xc::NewSaslServerContext();
  XC_REQUIRE(sasl_context.ok()) << sasl_context.status();
  config.limits.max_stanza_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_stanza_bytes));
  config.max_auth_attempts = absl::GetFlag(FLAGS_max_auth_attempts);
  config.max_connections_per_ip = absl::GetFlag(FLAGS_max_connections_per_ip);
  config.pre_auth_timeout = absl::Seconds(absl::GetFlag(FLAGS_pre_auth_timeout_s));
  config.max_write_buffer_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_bytes));

  absl::StatusOr<std::unique_ptr<xc::ServiceRuntime>> runtime = xc::ServiceRuntime::Create(
      "xc_gateway", absl::GetFlag(FLAGS_redis), absl::GetFlag(FLAGS_admin_listen));
  XC_REQUIRE(runtime.ok()) << runtime.status();
  xc::RedisClient* redis = (*runtime)->redis();
  xc::GatewayMetrics gateway_metrics((*runtime)->registry());
  xc::AccountStore accounts(redis);
  auto roster = xmpp::roster::v1::RosterService::NewStub(
      xc::NewServiceChannel(absl::GetFlag(FLAGS_roster)));
  auto router = xmpp::presence::v1::PresenceRouter::NewStub(
      xc::NewServiceChannel(absl::GetFlag(FLAGS_router)));

  xc::EventLoop& loop = *(*runtime)->loop();
  xc::metrics::Family<xc::metrics::Histogram>& batch_inputs =
      (*runtime)->registry()->AddHistogram(
          "xc_gateway_backend_batch_inputs",
          "Session inputs one call to a service carried, by service.",
          xc::metrics::BatchSizeBuckets());
  xc::CallBatcherOptions batching;
  batching.timeout = absl::Seconds(5);
  batching.units_per_call = &batch_inputs.Add({{"service", "roster"}});
  // Calls to the services: frames on long-lived streams (--grpc_streams), or unary calls.
  xc::GrpcQueue* queue = (*runtime)->grpc_queue();
  using RosterStream =
      xc::StreamCalls<xmpp::roster::v1::RosterBatchFrame, xmpp::roster::v1::RosterBatchReply>;
  using RouterStream =
      xc::StreamCalls<xmpp::presence::v1::RouterBatchFrame, xmpp::presence::v1::RouterBatchReply>;
  const xc::StreamCallsOptions streams = xc::StreamCallsOptions::Enabled(xc::UseGrpcStreams());
  RosterStream roster_stream(
      queue,
      [stub = roster.get()](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return stub->PrepareAsyncHandleBatchStream(c, cq);
      },
      xc::UnaryStart<xmpp::roster::v1::RosterBatchRequest, xmpp::roster::v1::RosterBatchResponse>(
          queue,
          [stub = roster.get()](
              grpc::ClientContext* c, const xmpp::roster::v1::RosterBatchRequest& r,
              grpc::CompletionQueue* cq) { return stub->PrepareAsyncHandleBatch(c, r, cq); }),
      streams);
  RouterStream router_stream(
      queue,
      [stub = router.get()](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return stub->PrepareAsyncHandleBatchStream(c, cq);
      },
      xc::UnaryStart<xmpp::presence::v1::RouterBatchRequest,
                     xmpp::presence::v1::RouterBatchResponse>(
          queue,
          [stub = router.get()](
              grpc::ClientContext* c, const xmpp::presence::v1::RouterBatchRequest& r,
              grpc::CompletionQueue* cq) { return stub->PrepareAsyncHandleBatch(c, r, cq); }),
      streams);
  xc::CallBatcher<xmpp::roster::v1::RosterBatchRequest, xmpp::roster::v1::RosterBatchResponse>
      roster_calls(&loop, roster_stream.AsStart(), batching);
  batching.units_per_call = &batch_inputs.Add({{"service", "router"}});
  xc::CallBatcher<xmpp::presence::v1::RouterBatchRequest, xmpp::presence::v1::RouterBatchResponse>
      router_calls(&loop, router_stream.AsStart(), batching);
  xc::WorkPool work(2);
  xc::GatewayContext ctx;
  ctx.config = config;
  ctx.tls_context = tls_context;
  ctx.metrics = &gateway_metrics;
  ctx.sasl_context = *sasl_context;
  ctx.loop = &loop;
  ctx.work = &work;
  ctx.accounts = &accounts;
  ctx.roster = &roster_calls;
  ctx.router = &router_calls;

  xc::DeliveryService delivery(&ctx);
  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      (*runtime)->StartServer(absl::GetFlag(FLAGS_grpc_listen), {&delivery});
  XC_REQUIRE(server.ok()) << server.status();

  std::vector<std::string> hostport = absl::StrSplit(absl::GetFlag(FLAGS_listen), ':');
  XC_REQUIRE(hostport.size() == 2) << "--listen must be host:port";
  xc::ClientListener listener(&ctx);
  absl::StatusOr<int> port = listener.Listen(hostport[0], std::stoi(hostport[1]));
  XC_REQUIRE(port.ok()) << port.status();
  std::unique_ptr<xc::ClientListener> tls_listener;
  if (!absl::GetFlag(FLAGS_listen_tls).empty()) {
    XC_REQUIRE(tls_context != nullptr) << "--listen_tls needs --tls_cert and --tls_key";
    std::vector<std::string> tls_hostport = absl::StrSplit(absl::GetFlag(FLAGS_listen_tls), ':');
    XC_REQUIRE(tls_hostport.size() == 2) << "--listen_tls must be host:port";
    tls_listener = std::make_unique<xc::ClientListener>(&ctx, /*direct_tls=*/true);
    absl::StatusOr<int> tls_port =
        tls_listener->Listen(tls_hostport[0], std::stoi(tls_hostport[1]));
    XC_REQUIRE(tls_port.ok()) << tls_port.status();
    XC_LOG(INFO) << "direct TLS on " << tls_hostport[0] << ":" << *tls_port;
  }

  std::string advertise = absl::GetFlag(FLAGS_advertise);
  if (advertise.empty()) advertise = absl::GetFlag(FLAGS_grpc_listen);
  // Fenced by a router that could not reach our Deliver endpoint: our sessions are being ended
  // cluster-wide, so end their streams too (clients reconnect), then rejoin.
  auto on_fenced = [&ctx, &loop] {
    ctx.fenced = true;
    for (auto& s : ctx.registry.All()) {
      loop.Post([s] {
        s->CloseWithError(xc::StreamErrorCondition::kInternalServerError,
                          "this node lost contact with the cluster; reconnect");
      });
    }
  };
  xc::GatewayRegistration registration(
      redis, config.id, advertise, absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_ttl_ms)),
      on_fenced, [&ctx] { ctx.fenced = false; });
  absl::Status registered = registration.Register();
  XC_REQUIRE(registered.ok()) << "cannot register in Redis: " << registered;
  XC_LOG(INFO) << "gateway " << config.id << " serving XMPP on " << hostport[0] << ":" << *port
               << ", Deliver on " << advertise;

  std::atomic<bool> sweeping{true};
  std::thread sweeper([&] {
    while (sweeping && !xc::SleepUnlessShutdown(absl::Seconds(1))) {
      loop.Post([&] {
        listener.Sweep();
        if (tls_listener) tls_listener->Sweep();
      });
      if (xc::TakeReloadRequest() && ctx.tls_context.load() != nullptr) {
        // SIGHUP: load the certificate and key again; new streams use them, open ones keep
        // theirs. A bad file keeps the old pair in service.
        absl::StatusOr<void*> fresh = xc::NewTlsServerContext(absl::GetFlag(FLAGS_tls_cert),
                                                              absl::GetFlag(FLAGS_tls_key));
        if (fresh.ok()) {
          ctx.tls_context = *fresh;
          XC_LOG(INFO) << "TLS certificate reloaded from " << absl::GetFlag(FLAGS_tls_cert);
        } else {
          XC_LOG(ERROR) << "TLS reload failed, keeping the current certificate: "
                        << fresh.status();
        }
      }
    }
  });
  xc::WaitForShutdown();

  // Graceful drain: stop accepting, tell clients, end sessions at the router (unavailable is
  // broadcast for each), deregister, exit.
  XC_LOG(INFO) << "gateway " << config.id << " draining";
  (*runtime)->StartDraining();
  sweeping = false;
  sweeper.join();
  loop.Post([&] {
    listener.StopAccepting();
    if (tls_listener) tls_listener->StopAccepting();
  });
  std::vector<std::shared_ptr<xc::ClientSession>> sessions = ctx.registry.All();
  for (auto& s : sessions) {
    loop.Post([s] { s->CloseWithError(xc::StreamErrorCondition::kSystemShutdown); });
  }
  absl::SleepFor(absl::Milliseconds(500));  // EndSession calls complete meanwhile
  registration.Deregister();
  (*runtime)->Drain(server->get(), absl::Seconds(2));
  // Nothing of this scope (sessions, batchers, listeners) may run on the loop after this.
  (*runtime)->StopLoop();
  XC_LOG(INFO) << "gateway " << config.id << " stopped";
  return 0;
}
