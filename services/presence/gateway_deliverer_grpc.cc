#include "services/presence/gateway_deliverer_grpc.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/grpc/grpc_util.h"
#include "core/store/keys.h"
#include "proto/xmpp/gateway/v1/gateway.grpc.pb.h"

namespace xc {
namespace {

using xmpp::gateway::v1::GatewayDelivery;

class GrpcGatewayDeliverer final : public GatewayDeliverer {
 public:
  explicit GrpcGatewayDeliverer(RedisClient* redis) : redis_(redis) {}

  absl::StatusOr<std::vector<std::string>> Deliver(
      const std::string& gateway_id, const xmpp::gateway::v1::DeliverRequest& request) override {
    absl::Status last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      absl::StatusOr<std::shared_ptr<GatewayDelivery::Stub>> stub = StubFor(gateway_id, attempt > 0);
      if (!stub.ok()) return stub.status();
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(2));
      xmpp::gateway::v1::DeliverResponse response;
      grpc::Status s = (*stub)->Deliver(&ctx, request, &response);
      if (s.ok()) {
        return std::vector<std::string>(response.missing_full_jids().begin(),
                                        response.missing_full_jids().end());
      }
      last = FromGrpcStatus(s);
    }
    return last;
  }

 private:
  // Stubs are shared so that a refresh never frees one another thread is using.
  absl::StatusOr<std::shared_ptr<GatewayDelivery::Stub>> StubFor(const std::string& id, bool refresh) {
    {
      absl::MutexLock lock(&mu_);
      auto it = stubs_.find(id);
      if (it != stubs_.end() && !refresh) return it->second.stub;
    }
    absl::StatusOr<RedisReply> r = redis_->Command({"HGET", keys::Gateways(), id});
    if (!r.ok()) return r.status();
    if (r->is_nil()) return absl::NotFoundError(absl::StrCat("gateway ", id, " is not registered"));
    absl::MutexLock lock(&mu_);
    Entry& e = stubs_[id];
    if (e.address != r->str || !e.stub) {
      e.address = r->str;
      e.stub = GatewayDelivery::NewStub(NewServiceChannel(e.address));  // unique → shared
    }
    return e.stub;
  }

  struct Entry {
    std::string address;
    std::shared_ptr<GatewayDelivery::Stub> stub;
  };

  RedisClient* redis_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> stubs_;
};

}  // namespace

std::unique_ptr<GatewayDeliverer> NewGrpcGatewayDeliverer(RedisClient* redis) {
  return std::make_unique<GrpcGatewayDeliverer>(redis);
}

}  // namespace xc
