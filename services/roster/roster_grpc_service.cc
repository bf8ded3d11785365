#include "services/roster/roster_grpc_service.h"

#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"

namespace xc {

absl::Status RosterGrpcService::DispatchEffects(const RosterOutput& output) {
  if (output.effects.empty()) return absl::OkStatus();
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
  absl::StatusOr<RosterOutput> output = processor_->HandleSubscription(*session, *presence);
  if (!output.ok()) return ToGrpcStatus(output.status());
  absl::Status dispatched = DispatchEffects(*output);
  if (!dispatched.ok()) return ToGrpcStatus(dispatched);
  for (const XmlElement& reply : output->replies) ToStanzaProto(reply, response->add_replies());
  return grpc::Status::OK;
}

}  // namespace xc
