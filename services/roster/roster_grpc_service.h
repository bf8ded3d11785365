#pragma once

#include <functional>
#include <memory>

#include "core/metrics/metrics.h"
#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "proto/xmpp/roster/v1/roster.grpc.pb.h"
#include "services/roster/roster_consistency.h"
#include "services/roster/roster_processor.h"

namespace xc {

// The RosterService gRPC surface: runs the processor, hands the effects to the presence router
// (retrying within a bound), then answers. `processor` and `router` must outlive it.
class RosterGrpcService final : public xmpp::roster::v1::RosterService::Service {
 public:
  RosterGrpcService(RosterProcessor* processor, RosterConsistency* consistency,
                    xmpp::presence::v1::PresenceRouter::StubInterface* router,
                    metrics::Registry* registry);

  grpc::Status HandleRosterIq(grpc::ServerContext* context,
                              const xmpp::roster::v1::RosterIqRequest* request,
                              xmpp::roster::v1::RosterIqResponse* response) override;
  grpc::Status HandleSubscription(grpc::ServerContext* context,
                                  const xmpp::roster::v1::SubscriptionRequest* request,
                                  xmpp::roster::v1::SubscriptionResponse* response) override;
  grpc::Status CheckRoster(grpc::ServerContext* context,
                           const xmpp::roster::v1::CheckRosterRequest* request,
                           xmpp::roster::v1::CheckRosterResponse* response) override;

 private:
  absl::Status DispatchEffects(const RosterOutput& output);
  // Runs a flow (retrying transient failures), dispatches its effects, fills the replies.
  template <typename Response>
  grpc::Status Run(const std::function<absl::StatusOr<RosterOutput>()>& flow, Response* response);

  RosterProcessor* processor_;
  RosterConsistency* consistency_;
  xmpp::presence::v1::PresenceRouter::StubInterface* router_;
  metrics::Family<metrics::Counter>* requests_;
  metrics::Family<metrics::Counter>* effects_;
  metrics::Histogram* dispatch_seconds_;
  metrics::Counter* dispatch_failures_;
  metrics::Counter* flow_retries_;
  metrics::Family<metrics::Counter>* repairs_;
  metrics::Family<metrics::Counter>* transitions_;
  metrics::Counter* requests_stored_;
  metrics::Counter* requests_cleared_;
  void Record(const RosterOutput& output);
};

}  // namespace xc
