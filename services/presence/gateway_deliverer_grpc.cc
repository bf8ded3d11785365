#include "services/presence/gateway_deliverer_grpc.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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
  GrpcGatewayDeliverer(RedisClient* redis, metrics::Registry* registry)
      : redis_(redis),
        seconds_(&registry
                      ->AddHistogram("xc_router_deliver_seconds",
                                     "Presence router to gateway hop (one Deliver batch).")
                      .Add({})),
        stanzas_(&registry->AddCounter("xc_router_delivered_stanzas_total",
                                       "Stanzas handed to gateways.").Add({})),
        failures_(&registry->AddCounter("xc_router_deliver_failures_total",
                                        "Deliver batches that failed after retries.").Add({})) {}

  absl::StatusOr<std::vector<std::string>> Deliver(
      const std::string& gateway_id, const xmpp::gateway::v1::DeliverRequest& request) override {
    metrics::ScopedTimer timer(seconds_);
    stanzas_->Increment(request.items_size());
    if (IsFenced(gateway_id)) {
      failures_->Increment();
      return absl::FailedPreconditionError(absl::StrCat("gateway ", gateway_id, " is fenced"));
    }
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
    failures_->Increment();
    if (absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last)) {
      absl::MutexLock lock(&mu_);
      fenced_.insert(gateway_id);  // the router fences it; fail fast until it re-registers
    }
    return last;
  }

 private:
  // A gateway this router gave up on stays skipped while its fence key exists in Redis (one
  // read per batch, only for such gateways); the gateway deletes the key when it re-registers.
  bool IsFenced(const std::string& id) {
    {
      absl::MutexLock lock(&mu_);
      if (!fenced_.contains(id)) return false;
    }
    absl::StatusOr<RedisReply> r = redis_->Command({"EXISTS", keys::GatewayFenced(id)});
    if (!r.ok()) return true;
    if (r->integer == 1) return true;
    absl::MutexLock lock(&mu_);
    fenced_.erase(id);
    return false;
  }

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
  metrics::Histogram* seconds_;
  metrics::Counter* stanzas_;
  metrics::Counter* failures_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> stubs_;
  absl::flat_hash_set<std::string> fenced_;
};

}  // namespace

std::unique_ptr<GatewayDeliverer> NewGrpcGatewayDeliverer(RedisClient* redis,
                                                          metrics::Registry* registry) {
  return std::make_unique<GrpcGatewayDeliverer>(redis, registry);
}

}  // namespace xc
