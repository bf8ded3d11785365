#include "services/gateway/gateway_server.h"

#include <arpa/inet.h>
#include <gsasl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/base/log.h"
#include "core/store/keys.h"

namespace xc {

absl::StatusOr<void*> NewTlsServerContext(const std::string& cert_file,
                                          const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    std::string why = ERR_reason_error_string(ERR_get_error()) ?: "unknown error";
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TLS certificate/key (", cert_file, ", ", key_file, "): ", why));
  }
  return static_cast<void*>(ctx);
}

namespace {

int SaslCallback(Gsasl*, Gsasl_session* sasl, Gsasl_property property) {
  auto* session = static_cast<ClientSession*>(gsasl_session_hook_get(sasl));
  return session != nullptr ? session->ProvideSaslProperty(property, sasl) : GSASL_NO_CALLBACK;
}

}  // namespace

absl::StatusOr<void*> NewSaslServerContext() {
  Gsasl* ctx = nullptr;
  int rc = gsasl_init(&ctx);
  if (rc != GSASL_OK) return absl::InternalError(absl::StrCat("gsasl_init: ", gsasl_strerror(rc)));
  gsasl_callback_set(ctx, &SaslCallback);
  for (const char* mech : {"SCRAM-SHA-1", "SCRAM-SHA-256"}) {
    if (!gsasl_server_support_p(ctx, mech)) {
      return absl::UnimplementedError(absl::StrCat("libgsasl lacks ", mech));
    }
  }
  return static_cast<void*>(ctx);
}

void DeliveryService::Serve(GrpcQueue* queue) {
  ServeUnary(queue, &async_, &xmpp::gateway::v1::GatewayDelivery::AsyncService::RequestDeliver,
             [this](const xmpp::gateway::v1::DeliverRequest& request,
                    xmpp::gateway::v1::DeliverResponse* response) -> Task<grpc::Status> {
               Deliver(request, response);
               co_return grpc::Status::OK;
             });
}

void DeliveryService::Deliver(const xmpp::gateway::v1::DeliverRequest& request,
                              xmpp::gateway::v1::DeliverResponse* response) {
  for (int i = 0; i < request.items_size(); ++i) {
    const xmpp::gateway::v1::DeliverItem& item = request.items(i);
    std::shared_ptr<ClientSession> session = ctx_->registry.Find(item.full_jid());
    if (!session) {
      response->add_missing_full_jids(item.full_jid());
      response->add_missing_indexes(i);
      continue;
    }
    session->Deliver(item.xml(), item.address_to_session());
  }
}

ClientListener::~ClientListener() {
  if (listen_fd_ >= 0) close(listen_fd_);
}

absl::StatusOr<int> ClientListener::Listen(const std::string& host, int port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad listen host ", host));
  }
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 1024) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, ": ",
                                               std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  ctx_->loop->Watch(listen_fd_, EPOLLIN, [this](uint32_t) { Accept(); });
  return ntohs(addr.sin_port);
}

void ClientListener::StopAccepting() {
  if (listen_fd_ < 0) return;
  ctx_->loop->Unwatch(listen_fd_);
  close(listen_fd_);
  listen_fd_ = -1;
}

void ClientListener::Accept() {
  while (true) {
    sockaddr_in peer = {};
    socklen_t len = sizeof(peer);
    int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char ip[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    int& count = per_ip_[ip];
    if (count >= ctx_->config.max_connections_per_ip) {
      // Over the limit: a stream error, then close (RFC 6120 §4.9.3.17 policy-violation).
      static constexpr char kRefusal[] =
          "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><stream:error>"
          "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
          "</stream:stream>";
      (void)!send(fd, kRefusal, sizeof(kRefusal) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    ++count;
    auto session = std::make_shared<ClientSession>(ctx_, fd, absl::StrCat(ip, ":", ntohs(peer.sin_port)),
                                                 direct_tls_);
    std::string address = ip;
    session->set_on_close([this, address] {
      if (--per_ip_[address] <= 0) per_ip_.erase(address);
    });
    sessions_.push_back({session, absl::Now()});
    session->Start();
  }
}

void ClientListener::Sweep() {
  const absl::Time now = absl::Now();
  std::vector<Tracked> alive;
  alive.reserve(sessions_.size());
  for (Tracked& t : sessions_) {
    std::shared_ptr<ClientSession> s = t.session.lock();
    if (s && !s->closed() && !s->authenticated() &&
        now - t.accepted > ctx_->config.pre_auth_timeout) {
      s->CloseWithError(StreamErrorCondition::kConnectionTimeout);
    }
    if (!s || s->closed()) continue;  // its close callback already freed the slot
    alive.push_back(std::move(t));
  }
  sessions_ = std::move(alive);
}

namespace {

// The heartbeat refreshes the alive key unless a router has fenced this gateway.
const RedisScript& HeartbeatScript() {
  static const RedisScript* script = new RedisScript(R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
)lua");
  return *script;
}

}  // namespace

GatewayRegistration::GatewayRegistration(RedisClient* redis, std::string id, std::string address,
                                         absl::Duration ttl, std::function<void()> on_fenced,
                                         std::function<void()> on_recovered)
    : redis_(redis), id_(std::move(id)), address_(std::move(address)), ttl_(ttl),
      on_fenced_(std::move(on_fenced)), on_recovered_(std::move(on_recovered)) {}

GatewayRegistration::~GatewayRegistration() {
  stop_ = true;
  if (beat_.joinable()) beat_.join();
}

absl::Status GatewayRegistration::Announce() {
  const std::string ttl_ms = std::to_string(absl::ToInt64Milliseconds(ttl_));
  absl::StatusOr<std::vector<RedisReply>> r = redis_->Pipeline({
      {"DEL", keys::GatewayFenced(id_)},
      {"SET", keys::GatewayAlive(id_), "1", "PX", ttl_ms},
      {"HSET", keys::Gateways(), id_, address_},
  });
  return r.status();
}

absl::StatusOr<bool> GatewayRegistration::Beat() {
  absl::StatusOr<RedisReply> r =
      HeartbeatScript().Run(*redis_, {keys::GatewayAlive(id_), keys::GatewayFenced(id_)},
                            {std::to_string(absl::ToInt64Milliseconds(ttl_))});
  if (!r.ok()) return r.status();
  return r->integer == 1;
}

void GatewayRegistration::Recover() {
  XC_LOG(WARNING) << "gateway " << id_
                  << " was fenced by a router that could not reach it; closing its streams";
  if (on_fenced_) on_fenced_();
  // Our sessions belong to the reaper now: wait until it has ended them (it drops our
  // registration last), so that no session bound after we re-register is reaped with them.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (!stop_ && absl::Now() < give_up) {
    absl::StatusOr<RedisReply> r = redis_->Command({"HEXISTS", keys::Gateways(), id_});
    if (r.ok() && r->integer == 0) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (stop_) return;
  absl::Status s = Announce();
  if (!s.ok()) {
    XC_LOG(WARNING) << "re-registration failed: " << s;
    return;  // the next beat finds the fence again and retries
  }
  XC_LOG(INFO) << "gateway " << id_ << " registered again after fencing";
  if (on_recovered_) on_recovered_();
}

absl::Status GatewayRegistration::Register() {
  absl::Status s = Announce();
  if (!s.ok()) return s;
  beat_ = std::thread([this] {
    while (!stop_) {
      for (int i = 0; i < 10 && !stop_; ++i) {
        absl::SleepFor(ttl_ / 30);
      }
      if (stop_) break;
      absl::StatusOr<bool> alive = Beat();
      if (!alive.ok()) {
        XC_LOG(WARNING) << "heartbeat failed: " << alive.status();
      } else if (!*alive) {
        Recover();
      }
    }
  });
  return absl::OkStatus();
}

void GatewayRegistration::Deregister() {
  stop_ = true;
  if (beat_.joinable()) beat_.join();
  (void)redis_->Pipeline({{"DEL", keys::GatewayAlive(id_)},
                          {"HDEL", keys::Gateways(), id_},
                          {"DEL", keys::GatewaySessions(id_)}});
}

}  // namespace xc
