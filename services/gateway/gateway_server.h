#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"
#include "core/grpc/serve_on_loop.h"
#include "core/redis/redis_client.h"
#include "proto/xmpp/gateway/v1/gateway.grpc.pb.h"
#include "services/gateway/client_session.h"
#include "services/gateway/gateway_context.h"

namespace xc {

// An OpenSSL server context (TLS 1.2+) from PEM files; returned as SSL_CTX*.
absl::StatusOr<void*> NewTlsServerContext(const std::string& cert_file, const std::string& key_file);
// A gsasl context whose callback asks the session (the session hook) for SCRAM properties.
absl::StatusOr<void*> NewSaslServerContext();

// The Deliver endpoint, served on the process's GrpcQueue: each call's whole batch is written
// to this gateway's sessions on the loop, in order; the call ends once every item is written
// (or found to have no session).
class DeliveryService final : public QueuedService {
 public:
  explicit DeliveryService(GatewayContext* ctx) : ctx_(ctx) {}
  grpc::Service* grpc_service() override { return &async_; }
  void Serve(GrpcQueue* queue) override;

 private:
  void Deliver(const xmpp::gateway::v1::DeliverRequest& request,
               xmpp::gateway::v1::DeliverResponse* response);

  xmpp::gateway::v1::GatewayDelivery::AsyncService async_;
  GatewayContext* ctx_;
};

// Accepts client connections on the XMPP port and runs their sessions on one event loop.
class ClientListener {
 public:
  // `direct_tls`: every connection starts with a TLS handshake (XEP-0368 "xmpps-client").
  explicit ClientListener(GatewayContext* ctx, bool direct_tls = false)
      : ctx_(ctx), direct_tls_(direct_tls) {}
  ~ClientListener();
  // Binds host:port (port 0 picks one); returns the bound port.
  absl::StatusOr<int> Listen(const std::string& host, int port);
  void StopAccepting();  // loop thread
  // Closes unauthenticated streams older than the pre-auth timeout and forgets closed ones;
  // call about once a second on the loop thread.
  void Sweep();

 private:
  void Accept();

  struct Tracked {
    std::weak_ptr<ClientSession> session;
    absl::Time accepted;
  };

  GatewayContext* ctx_;
  bool direct_tls_;
  int listen_fd_ = -1;
  std::vector<Tracked> sessions_;
  std::unordered_map<std::string, int> per_ip_;
};

// Keeps this gateway registered in Redis with a heartbeat; the router ends the sessions of a
// gateway whose heartbeat stops.
class GatewayRegistration {
 public:
  // `on_fenced` runs on the heartbeat thread when a router has fenced this gateway (it could not
  // reach our Deliver endpoint): it must close every bound stream. The registration then waits
  // for the router to reap our sessions and registers again; `on_recovered` runs after that.
  GatewayRegistration(RedisClient* redis, std::string id, std::string address,
                      absl::Duration ttl, std::function<void()> on_fenced = nullptr,
                      std::function<void()> on_recovered = nullptr);
  ~GatewayRegistration();  // stops beating; Deregister() first for a clean exit
  absl::Status Register();
  void Deregister();

 private:
  absl::Status Announce();
  // Returns false when fenced.
  absl::StatusOr<bool> Beat();
  void Recover();

  RedisClient* redis_;
  std::string id_;
  std::string address_;
  absl::Duration ttl_;
  std::function<void()> on_fenced_;
  std::function<void()> on_recovered_;
  std::atomic<bool> stop_{false};
  std::thread beat_;
};

}  // namespace xc
