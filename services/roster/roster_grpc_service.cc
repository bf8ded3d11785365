#include "services/roster/roster_grpc_service.h"

#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"

namespace xc {

RosterGrpcService::RosterGrpcService(RosterProcessor* processor,
                                     xmpp::presence::v1::PresenceRouter::StubInterface* router,
                                     metrics::Registry* registry)
    : processor_(processor),
      router_(router),
      requests_(&registry->AddCounter("xc_roster_requests_total",
                                      "Roster IQs and subscription stanzas, by type.")),
      effects_(&registry->AddCounter("xc_roster_effects_total",
                                     "Effects handed to the router, by kind.")),
      dispatch_seconds_(&registry
                             ->AddHistogram("xc_roster_dispatch_seconds",
                                            "Roster service to presence router hop (Dispatch).")
                             .Add({})),
      dispatch_failures_(&registry
                              ->AddCounter("xc_roster_dispatch_failures_total",
                                           "Dispatch calls that failed after retries.")
                              .Add({})) {}

absl::Status RosterGrpcService::DispatchEffects(const RosterOutput& output) {
  if (output.effects.empty()) return absl::OkStatus();
  for (const auto& e : output.effects) {
    const char* kind = e.has_presence_snapshot() ? "presence"
                       : e.delivery().stanza().kind() == xmpp::stanza::v1::KIND_IQ ? "push"
                                                                                    : "delivery";
    effects_->Add({{"kind", kind}}).Increment();
  }
  metrics::ScopedTimer timer(dispatch_seconds_);
  xmpp::presence::v1::DispatchRequest request;
  for (const auto& effect : output.effects) *request.add_effects() = effect;
  absl::Status last;
  absl::Duration backoff = absl::Milliseconds(20);
  for (int attempt = 0; attempt < 4; ++attempt) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(3));
    xmpp::presence::v1::DispatchResponse response;
    grpc::Status s = router_->Dispatch(&ctx, request, &response);
    if (s.ok()) return absl::OkStatus();
    last = FromGrpcStatus(s);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      break;
    }
    absl::SleepFor(backoff);
    backoff *= 3;
  }
  dispatch_failures_->Increment();
  XC_LOG(WARNING) << "dispatch to router failed: " << last;
  return last;
}

grpc::Status RosterGrpcService::HandleRosterIq(grpc::ServerContext*,
                                               const xmpp::roster::v1::RosterIqRequest* request,
                                               xmpp::roster::v1::RosterIqResponse* response) {
  absl::StatusOr<Jid> session = Jid::Parse(request->session_jid());
  absl::StatusOr<XmlElement> iq = FromStanzaProto(request->iq());
  if (!session.ok() || !iq.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad session or stanza");
  }
  requests_->Add({{"type", "iq_" + iq->Attribute("type")}}).Increment();
  absl::StatusOr<RosterOutput> output = processor_->HandleRosterIq(*session, *iq);
  if (!output.ok()) return ToGrpcStatus(output.status());
  absl::Status dispatched = DispatchEffects(*output);
  if (!dispatched.ok()) return ToGrpcStatus(dispatched);
  for (const XmlElement& reply : output->replies) ToStanzaProto(reply, response->add_replies());
  return grpc::Status::OK;
}

grpc::Status RosterGrpcService::HandleSubscription(
    grpc::ServerContext*, const xmpp::roster::v1::SubscriptionRequest* request,
    xmpp::roster::v1::SubscriptionResponse* response) {
  absl::StatusOr<Jid> session = Jid::Parse(request->session_jid());
  absl::StatusOr<XmlElement> presence = FromStanzaProto(request->presence());
  if (!session.ok() || !presence.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad session or stanza");
  }
  requests_->Add({{"type", request->presence().type()}}).Increment();
  absl::StatusOr<RosterOutput> output = processor_->HandleSubscription(*session, *presence);
  if (!output.ok()) return ToGrpcStatus(output.status());
  absl::Status dispatched = DispatchEffects(*output);
  if (!dispatched.ok()) return ToGrpcStatus(dispatched);
  for (const XmlElement& reply : output->replies) ToStanzaProto(reply, response->add_replies());
  return grpc::Status::OK;
}

}  // namespace xc
