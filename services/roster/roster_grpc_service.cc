#include "services/roster/roster_grpc_service.h"

#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"

namespace xc {

RosterGrpcService::RosterGrpcService(RosterProcessor* processor, RosterConsistency* consistency,
                                     xmpp::presence::v1::PresenceRouter::StubInterface* router,
                                     metrics::Registry* registry)
    : processor_(processor),
      consistency_(consistency),
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
                              .Add({})),
      flow_retries_(&registry
                         ->AddCounter("xc_roster_flow_retries_total",
                                      "Flows run again after a transient failure (Redis "
                                      "unreachable or timing out).")
                         .Add({})),
      repairs_(&registry->AddCounter(
          "xc_roster_consistency_findings_total",
          "Disagreements between the two sides of a subscription found by CheckRoster, by "
          "outcome (reported, repaired).")),
      transitions_(&registry->AddCounter(
          "xc_roster_subscription_transitions_total",
          "Subscription state changes, by verb (or remove) and direction (outbound: the user's "
          "own stanza; inbound: a contact's).")),
      requests_stored_(&registry
                            ->AddCounter("xc_roster_waiting_requests_stored_total",
                                         "Subscription requests stored for their contact.")
                            .Add({})),
      requests_cleared_(&registry
                             ->AddCounter("xc_roster_waiting_requests_cleared_total",
                                          "Stored requests answered, cancelled or removed.")
                             .Add({})) {}

void RosterGrpcService::Record(const RosterOutput& output) {
  for (const auto& [verb, direction] : output.transitions) {
    transitions_->Add({{"verb", verb}, {"direction", direction}}).Increment();
  }
  if (output.requests_stored > 0) requests_stored_->Increment(output.requests_stored);
  if (output.requests_cleared > 0) requests_cleared_->Increment(output.requests_cleared);
}

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

namespace {

bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

// Runs the processor again while it fails transiently (Redis briefly unreachable), up to a
// bound, then the caller answers with a clear error. Each per-user step is a compare-and-swap,
// so a repeated flow never changes or delivers anything twice. Effects, once computed, are
// dispatched with their own bounded retries (DispatchEffects) and never recomputed. A flow
// interrupted between its two per-user steps (an approval stored on one side only) is found and
// healed by CheckRoster (RosterConsistency, `xc-admin roster check --repair`).
template <typename Flow>
absl::Status WithRetries(Flow flow, metrics::Counter* retries) {
  absl::Status s;
  absl::Duration backoff = absl::Milliseconds(50);
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) retries->Increment();
    s = flow();
    if (!Transient(s)) return s;
    absl::SleepFor(backoff);
    backoff *= 2;
  }
  return s;
}

}  // namespace

template <typename Response>
grpc::Status RosterGrpcService::Run(const std::function<absl::StatusOr<RosterOutput>()>& flow,
                                    Response* response) {
  RosterOutput output;
  absl::Status status = WithRetries([&]() -> absl::Status {
    absl::StatusOr<RosterOutput> out = flow();
    if (!out.ok()) return out.status();
    output = *std::move(out);
    return absl::OkStatus();
  }, flow_retries_);
  if (status.ok()) status = DispatchEffects(output);
  if (!status.ok()) return ToGrpcStatus(status);
  Record(output);
  for (const XmlElement& reply : output.replies) ToStanzaProto(reply, response->add_replies());
  return grpc::Status::OK;
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
  return Run([&] { return processor_->HandleRosterIq(*session, *iq); }, response);
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
  return Run([&] { return processor_->HandleSubscription(*session, *presence); }, response);
}

grpc::Status RosterGrpcService::CheckRoster(grpc::ServerContext*,
                                            const xmpp::roster::v1::CheckRosterRequest* request,
                                            xmpp::roster::v1::CheckRosterResponse* response) {
  absl::StatusOr<Jid> user = Jid::Parse(request->user());
  if (!user.ok() || user->local().empty() || user->is_full()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "user must be a bare JID user@domain");
  }
  ConsistencyReport report;
  absl::Status status = WithRetries([&]() -> absl::Status {
    absl::StatusOr<ConsistencyReport> r = consistency_->Check(*user, request->repair());
    if (!r.ok()) return r.status();
    report = *std::move(r);
    return absl::OkStatus();
  }, flow_retries_);
  if (status.ok()) status = DispatchEffects(report.output);
  if (!status.ok()) return ToGrpcStatus(status);
  Record(report.output);
  response->set_contacts_checked(report.contacts_checked);
  for (const RosterFinding& f : report.findings) {
    xmpp::roster::v1::RosterFinding* out = response->add_findings();
    out->set_user(f.user);
    out->set_contact(f.contact);
    out->set_problem(f.problem);
    out->set_repair(f.repair);
    out->set_repaired(f.repaired);
    repairs_->Add({{"outcome", f.repaired ? "repaired" : "reported"}}).Increment();
  }
  return grpc::Status::OK;
}

}  // namespace xc
