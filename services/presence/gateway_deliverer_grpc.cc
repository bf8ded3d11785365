#include "services/presence/gateway_deliverer_grpc.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/grpc/call_batcher.h"
#include "core/grpc/grpc_util.h"
#include "core/grpc/unary_call.h"
#include "core/store/keys.h"
#include "proto/xmpp/gateway/v1/gateway.grpc.pb.h"

namespace xc {
namespace {

using xmpp::gateway::v1::GatewayDelivery;

class GrpcGatewayDeliverer final : public GatewayDeliverer {
 public:
  GrpcGatewayDeliverer(GrpcQueue* queue, AsyncRedisClient* redis, metrics::Registry* registry)
      : queue_(queue),
        redis_(redis),
        seconds_(&registry
                      ->AddHistogram("xc_router_deliver_seconds",
                                     "Presence router to gateway hop (one input's stanzas for "
                                     "one gateway, delivered).")
                      .Add({})),
        units_(&registry
                    ->AddHistogram("xc_router_deliver_batch_units",
                                   "Inputs whose stanzas one Deliver call carried.",
                                   metrics::BatchSizeBuckets())
                    .Add({})),
        stanzas_(
            &registry
                 ->AddCounter("xc_router_delivered_stanzas_total", "Stanzas handed to gateways.")
                 .Add({})),
        failures_(&registry
                       ->AddCounter("xc_router_deliver_failures_total",
                                    "Deliveries that failed after retries.")
                       .Add({})) {}

  Task<absl::StatusOr<std::vector<std::string>>> Deliver(
      const std::string& gateway_id, xmpp::gateway::v1::DeliverRequest request) override {
    const int64_t start = EventLoop::NowNanos();
    stanzas_->Increment(request.items_size());
    if (co_await IsFenced(gateway_id)) {
      failures_->Increment();
      co_return absl::FailedPreconditionError(absl::StrCat("gateway ", gateway_id, " is fenced"));
    }
    absl::Status last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      absl::StatusOr<Target*> target = co_await TargetFor(gateway_id, attempt > 0);
      if (!target.ok()) co_return target.status();
      auto answer = co_await (*target)->batcher->Call([&](xmpp::gateway::v1::DeliverRequest* r) {
        for (const xmpp::gateway::v1::DeliverItem& item : request.items()) *r->add_items() = item;
        return request.items_size();
      });
      if (answer.status.ok()) {
        seconds_->Observe(static_cast<double>(EventLoop::NowNanos() - start) * 1e-9);
        std::vector<std::string> missing;
        const xmpp::gateway::v1::DeliverResponse& response = *answer.response;
        const int first = answer.slice.first;
        const int end = first + answer.slice.count;
        for (int i = 0; i < response.missing_indexes_size(); ++i) {
          const int index = response.missing_indexes(i);
          if (index >= first && index < end && i < response.missing_full_jids_size()) {
            missing.push_back(response.missing_full_jids(i));
          }
        }
        co_return missing;
      }
      last = FromGrpcStatus(answer.status);
    }
    failures_->Increment();
    if (absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last)) {
      fenced_.insert(gateway_id);  // the router fences it; fail fast until it re-registers
    }
    co_return last;
  }

 private:
  using Batcher = CallBatcher<xmpp::gateway::v1::DeliverRequest, xmpp::gateway::v1::DeliverResponse>;
  struct Target {
    std::string address;
    std::unique_ptr<GatewayDelivery::Stub> stub;
    std::unique_ptr<Batcher> batcher;
  };

  // A gateway this router gave up on stays skipped while its fence key exists in Redis (one
  // read per delivery, only for such gateways); the gateway deletes the key when it
  // re-registers.
  Task<bool> IsFenced(const std::string& id) {
    if (!fenced_.contains(id)) co_return false;
    RedisArgv cmd = {"EXISTS", keys::GatewayFenced(id)};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok() || r->integer == 1) co_return true;
    fenced_.erase(id);
    co_return false;
  }

  // The gateway's channel and batcher; `refresh` looks its address up again (it may have
  // restarted elsewhere). Targets are never freed while the router runs: calls in flight keep
  // using the batcher they were given.
  Task<absl::StatusOr<Target*>> TargetFor(const std::string& id, bool refresh) {
    auto it = targets_.find(id);
    if (it != targets_.end() && !refresh) co_return it->second.back().get();
    RedisArgv cmd = {"HGET", keys::Gateways(), id};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    if (r->is_nil()) {
      co_return absl::NotFoundError(absl::StrCat("gateway ", id, " is not registered"));
    }
    std::vector<std::unique_ptr<Target>>& versions = targets_[id];
    if (!versions.empty() && versions.back()->address == r->str) co_return versions.back().get();
    auto target = std::make_unique<Target>();
    target->address = r->str;
    target->stub = GatewayDelivery::NewStub(NewServiceChannel(target->address));
    GatewayDelivery::Stub* stub = target->stub.get();
    CallBatcherOptions options;
    options.timeout = absl::Seconds(2);
    options.units_per_call = units_;
    target->batcher = std::make_unique<Batcher>(
        queue_->loop(),
        UnaryStart<xmpp::gateway::v1::DeliverRequest, xmpp::gateway::v1::DeliverResponse>(
            queue_,
            [stub](grpc::ClientContext* c, const xmpp::gateway::v1::DeliverRequest& r,
                   grpc::CompletionQueue* cq) { return stub->PrepareAsyncDeliver(c, r, cq); }),
        options);
    versions.push_back(std::move(target));
    co_return versions.back().get();
  }

  GrpcQueue* queue_;
  AsyncRedisClient* redis_;
  metrics::Histogram* seconds_;
  metrics::Histogram* units_;
  metrics::Counter* stanzas_;
  metrics::Counter* failures_;
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<Target>>> targets_;
  absl::flat_hash_set<std::string> fenced_;
};

}  // namespace

std::unique_ptr<GatewayDeliverer> NewGrpcGatewayDeliverer(GrpcQueue* queue, AsyncRedisClient* redis,
                                                          metrics::Registry* registry) {
  return std::make_unique<GrpcGatewayDeliverer>(queue, redis, registry);
}

}  // namespace xc
