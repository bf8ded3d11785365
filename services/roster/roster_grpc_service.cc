#include "services/roster/roster_grpc_service.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"
#include "core/grpc/serve_on_loop.h"

namespace xc {

namespace {

CallBatcherOptions DispatchBatching(metrics::Registry* registry) {
  CallBatcherOptions o;
  o.timeout = absl::Seconds(3);
  o.units_per_call = &registry
                          ->AddHistogram("xc_roster_dispatch_batch_flows",
                                         "Flows whose effects one DispatchBatch call carried.",
                                         metrics::BatchSizeBuckets())
                          .Add({});
  return o;
}

}  // namespace

RosterGrpcService::RosterGrpcService(EventLoop* loop, RosterProcessor* processor,
                                     RosterConsistency* consistency,
                                     xmpp::presence::v1::PresenceRouter::Stub* router,
                                     metrics::Registry* registry)
    : loop_(loop),
      processor_(processor),
      consistency_(consistency),
      dispatch_(
          loop,
          [router](grpc::ClientContext* c, const xmpp::presence::v1::DispatchBatchRequest* req,
                   xmpp::presence::v1::DispatchBatchResponse* resp,
                   std::function<void(grpc::Status)> done) {
            router->async()->DispatchBatch(c, req, resp, std::move(done));
          },
          DispatchBatching(registry)),
      requests_(&registry->AddCounter("xc_roster_requests_total",
                                      "Roster IQs and subscription stanzas, by type.")),
      effects_(&registry->AddCounter("xc_roster_effects_total",
                                     "Effects handed to the router, by kind.")),
      dispatch_seconds_(&registry
                             ->AddHistogram("xc_roster_dispatch_seconds",
                                            "Roster service to presence router hop: one flow's effects "
                                            "dispatched (DispatchBatch).")
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

namespace {

bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

bool Transient(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

Task<absl::Status> RosterGrpcService::DispatchEffects(const RosterOutput& output, Origin origin) {
  if (output.effects.empty()) co_return absl::OkStatus();
  for (const auto& e : output.effects) {
    const char* kind = e.has_presence_snapshot() ? "presence"
                       : e.delivery().stanza().kind() == xmpp::stanza::v1::KIND_IQ ? "push"
                                                                                    : "delivery";
    effects_->Add({{"kind", kind}}).Increment();
  }
  const int64_t start = EventLoop::NowNanos();
  grpc::Status last;
  absl::Duration backoff = absl::Milliseconds(20);
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto answer = co_await dispatch_.Call([&](xmpp::presence::v1::DispatchBatchRequest* r) {
      xmpp::presence::v1::DispatchRequest* flow = r->add_flows();
      for (const auto& effect : output.effects) *flow->add_effects() = effect;
      if (origin.items != nullptr) flow->set_origin_gateway(origin.gateway);
      return 1;
    });
    last = answer.status;
    if (last.ok()) {
      if (answer.slice.first >= answer.response->results_size()) {
        last = grpc::Status(grpc::StatusCode::INTERNAL, "router answered fewer flows than sent");
      } else {
        const xmpp::presence::v1::FlowResult& r = answer.response->results(answer.slice.first);
        last = grpc::Status(static_cast<grpc::StatusCode>(r.code()), r.message());
        if (last.ok() && origin.items != nullptr) *origin.items = r.origin_items();
      }
    }
    if (last.ok()) {
      dispatch_seconds_->Observe(static_cast<double>(EventLoop::NowNanos() - start) * 1e-9);
      co_return absl::OkStatus();
    }
    if (!Transient(last)) break;
    co_await Sleep(loop_, backoff);
    backoff *= 3;
  }
  dispatch_failures_->Increment();
  XC_LOG(WARNING) << "dispatch to router failed: " << last.error_message();
  co_return FromGrpcStatus(last);
}

// Runs the processor again while it fails transiently (Redis briefly unreachable), up to a
// bound, then the caller answers with a clear error. Each per-user step is a compare-and-swap,
// so a repeated flow never changes or delivers anything twice. Effects, once computed, are
// dispatched with their own bounded retries (DispatchEffects) and never recomputed. A flow
// interrupted between its two per-user steps (an approval stored on one side only) is found and
// healed by CheckRoster (RosterConsistency, `xc-admin roster check --repair`).
Task<absl::StatusOr<RosterOutput>> RosterGrpcService::Compute(
    std::function<Task<absl::StatusOr<RosterOutput>>()> flow) {
  absl::StatusOr<RosterOutput> output;
  absl::Duration backoff = absl::Milliseconds(50);
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) {
      flow_retries_->Increment();
      co_await Sleep(loop_, backoff);
      backoff *= 2;
    }
    output = co_await flow();
    if (!Transient(output.status())) break;
  }
  co_return output;
}

Task<absl::Status> RosterGrpcService::Complete(absl::StatusOr<RosterOutput> output,
                                               Replies* replies, Origin origin) {
  if (!output.ok()) co_return output.status();
  absl::Status dispatched = co_await DispatchEffects(*output, origin);
  if (!dispatched.ok()) co_return dispatched;
  Record(*output);
  for (const XmlElement& reply : output->replies) ToStanzaProto(reply, replies->Add());
  co_return absl::OkStatus();
}

Task<absl::StatusOr<RosterOutput>> RosterGrpcService::ComputeIq(
    const xmpp::roster::v1::RosterIqRequest& request) {
  absl::StatusOr<Jid> session = Jid::Parse(request.session_jid());
  absl::StatusOr<XmlElement> iq = FromStanzaProto(request.iq());
  if (!session.ok() || !iq.ok()) co_return absl::InvalidArgumentError("bad session or stanza");
  requests_->Add({{"type", "iq_" + iq->Attribute("type")}}).Increment();
  co_return co_await Compute([&] { return processor_->HandleRosterIq(*session, *iq); });
}

Task<absl::StatusOr<RosterOutput>> RosterGrpcService::ComputeSubscription(
    const xmpp::roster::v1::SubscriptionRequest& request, ReadAhead read_ahead) {
  absl::StatusOr<Jid> session = Jid::Parse(request.session_jid());
  absl::StatusOr<XmlElement> presence = FromStanzaProto(request.presence());
  if (!session.ok() || !presence.ok()) {
    co_return absl::InvalidArgumentError("bad session or stanza");
  }
  requests_->Add({{"type", request.presence().type()}}).Increment();
  // The reads done ahead serve the first attempt only: a run again after a failure reads anew.
  co_return co_await Compute([&] {
    return processor_->HandleSubscription(*session, *presence,
                                          std::exchange(read_ahead, std::nullopt));
  });
}

Task<absl::StatusOr<RosterOutput>> RosterGrpcService::ComputeInput(
    const xmpp::roster::v1::RosterInput& input, ReadAhead read_ahead) {
  if (input.has_roster_iq()) co_return co_await ComputeIq(input.roster_iq());
  if (input.has_subscription()) {
    co_return co_await ComputeSubscription(input.subscription(), std::move(read_ahead));
  }
  co_return absl::InvalidArgumentError("empty roster input");
}

Task<absl::Status> RosterGrpcService::RosterIq(const xmpp::roster::v1::RosterIqRequest& request,
                                               Replies* replies, Origin origin) {
  absl::StatusOr<RosterOutput> output = co_await ComputeIq(request);
  co_return co_await Complete(std::move(output), replies, origin);
}

Task<absl::Status> RosterGrpcService::Subscription(
    const xmpp::roster::v1::SubscriptionRequest& request, Replies* replies, Origin origin) {
  absl::StatusOr<RosterOutput> output = co_await ComputeSubscription(request, std::nullopt);
  co_return co_await Complete(std::move(output), replies, origin);
}

Task<absl::Status> RosterGrpcService::Check(const xmpp::roster::v1::CheckRosterRequest& request,
                                            xmpp::roster::v1::CheckRosterResponse* response) {
  absl::StatusOr<Jid> user = Jid::Parse(request.user());
  if (!user.ok() || user->local().empty() || user->is_full()) {
    co_return absl::InvalidArgumentError("user must be a bare JID user@domain");
  }
  absl::StatusOr<ConsistencyReport> report;
  absl::Duration backoff = absl::Milliseconds(50);
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) {
      flow_retries_->Increment();
      co_await Sleep(loop_, backoff);
      backoff *= 2;
    }
    report = co_await consistency_->Check(*user, request.repair());
    if (!Transient(report.status())) break;
  }
  if (!report.ok()) co_return report.status();
  absl::Status dispatched = co_await DispatchEffects(report->output, Origin());
  if (!dispatched.ok()) co_return dispatched;
  Record(report->output);
  response->set_contacts_checked(report->contacts_checked);
  for (const RosterFinding& f : report->findings) {
    xmpp::roster::v1::RosterFinding* out = response->add_findings();
    out->set_user(f.user);
    out->set_contact(f.contact);
    out->set_problem(f.problem);
    out->set_repair(f.repair);
    out->set_repaired(f.repaired);
    repairs_->Add({{"outcome", f.repaired ? "repaired" : "reported"}}).Increment();
  }
  co_return absl::OkStatus();
}

Task<bool> RosterGrpcService::CompleteInput(absl::StatusOr<RosterOutput> output,
                                            const std::string& origin_gateway,
                                            xmpp::roster::v1::RosterResult* result) {
  Origin origin;
  if (!origin_gateway.empty()) origin = Origin{origin_gateway, result->mutable_deliveries()};
  absl::Status status = co_await Complete(std::move(output), result->mutable_replies(), origin);
  if (!status.ok()) {
    result->clear_replies();
    result->clear_deliveries();
    result->set_code(static_cast<int>(status.code()));
    result->set_message(std::string(status.message()));
  }
  co_return true;
}

namespace {

const std::string& SessionOf(const xmpp::roster::v1::RosterInput& input) {
  return input.has_roster_iq() ? input.roster_iq().session_jid()
                               : input.subscription().session_jid();
}

}  // namespace

// The first reads of chain[1..]: each subscription input's two entries (the user's for the
// contact and the contact's for the user), read together while chain[0] runs. A flow touches
// only the entries of its own pair, so an input is read ahead only when no input before it in
// the chain has the same contact (and none is a roster IQ, which may touch any entry); what
// another session changes meanwhile makes a compare-and-swap fail, and that step reads again.
// The pair comes from the request's fields (the stanza's XML is parsed once, by the input's
// own step).
Task<std::vector<RosterGrpcService::ReadAhead>> RosterGrpcService::ReadChainAhead(
    const xmpp::roster::v1::RosterBatchRequest& request, const std::vector<int>& chain) {
  std::vector<ReadAhead> ahead(chain.size());
  std::vector<size_t> read_for;  // chain positions, in the order of `reads`
  std::vector<Task<RosterProcessor::SubscriptionReads>> reads;
  std::vector<std::string> contacts;  // bare contacts of chain[0..k)
  for (size_t k = 0; k < chain.size(); ++k) {
    const xmpp::roster::v1::RosterInput& input = request.inputs(chain[k]);
    if (!input.has_subscription()) break;
    absl::StatusOr<Jid> user = Jid::Parse(input.subscription().session_jid());
    absl::StatusOr<Jid> contact = Jid::Parse(input.subscription().presence().to());
    if (!user.ok() || !contact.ok()) break;
    std::string bare = contact->Bare().BareString();
    const bool seen = std::find(contacts.begin(), contacts.end(), bare) != contacts.end();
    contacts.push_back(std::move(bare));
    if (k == 0 || seen || contact->local().empty() || contact->Bare() == user->Bare()) continue;
    read_for.push_back(k);
    reads.push_back(processor_->ReadPair(user->Bare(), contact->Bare()));
  }
  if (reads.empty()) co_return ahead;
  std::vector<RosterProcessor::SubscriptionReads> done = co_await WhenAll(std::move(reads));
  for (size_t i = 0; i < read_for.size(); ++i) ahead[read_for[i]] = std::move(done[i]);
  co_return ahead;
}

// One session's inputs, in order: each one's state change is stored, and its effects dispatched
// (and answered), after the one before it. They overlap where order allows: the later inputs'
// first reads go out with the first input's (ReadChainAhead), and input k + 1's Redis steps run
// while input k's effects are with the router, since they change only roster entries, which the
// dispatch of input k does not read. Deliveries keep the stream's order: input k + 1's leave
// only once input k's have been accepted.
Task<bool> RosterGrpcService::BatchChain(const xmpp::roster::v1::RosterBatchRequest& request,
                                         std::vector<int> chain,
                                         xmpp::roster::v1::RosterBatchResponse* response) {
  if (chain.empty()) co_return true;
  std::vector<ReadAhead> ahead;
  absl::StatusOr<RosterOutput> output;
  if (chain.size() == 1) {
    output = co_await ComputeInput(request.inputs(chain[0]), std::nullopt);
  } else {
    auto [first, reads] = co_await WhenBoth(ComputeInput(request.inputs(chain[0]), std::nullopt),
                                            ReadChainAhead(request, chain));
    output = std::move(first);
    ahead = std::move(reads);
  }
  for (size_t k = 0; k < chain.size(); ++k) {
    Task<bool> complete = CompleteInput(std::move(output), request.origin_gateway(),
                                        response->mutable_results(chain[k]));
    if (k + 1 == chain.size()) {
      co_await std::move(complete);
      break;
    }
    auto [completed, next] = co_await WhenBoth(
        std::move(complete), ComputeInput(request.inputs(chain[k + 1]), std::move(ahead[k + 1])));
    output = std::move(next);
  }
  co_return true;
}

// Inputs of different sessions run concurrently; the inputs of one session (a gateway sends a
// stream's queued subscriptions together) run one after another in request order, each with its
// effects dispatched before the next starts: the stream is processed in order (RFC 6120 §10.1).
Task<grpc::Status> RosterGrpcService::Batch(const xmpp::roster::v1::RosterBatchRequest& request,
                                            xmpp::roster::v1::RosterBatchResponse* response) {
  // Every result exists before any chain runs: input i's is response->results(i).
  response->mutable_results()->Reserve(request.inputs_size());
  std::vector<std::vector<int>> chains;
  absl::flat_hash_map<absl::string_view, size_t> chain_of;
  for (int i = 0; i < request.inputs_size(); ++i) {
    response->add_results();
    const std::string& session = SessionOf(request.inputs(i));
    if (session.empty()) {
      chains.emplace_back(1, i);
      continue;
    }
    auto [it, added] = chain_of.try_emplace(session, chains.size());
    if (added) chains.emplace_back();
    chains[it->second].push_back(i);
  }
  std::vector<Task<bool>> tasks;
  tasks.reserve(chains.size());
  for (std::vector<int>& chain : chains) {
    tasks.push_back(BatchChain(request, std::move(chain), response));
  }
  co_await WhenAll(std::move(tasks));
  co_return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RosterGrpcService::HandleRosterIq(
    grpc::CallbackServerContext* context, const xmpp::roster::v1::RosterIqRequest* request,
    xmpp::roster::v1::RosterIqResponse* response) {
  return ServeOnLoop(loop_, context, [this, request, response]() -> Task<grpc::Status> {
    co_return ToGrpcStatus(co_await RosterIq(*request, response->mutable_replies(), Origin()));
  });
}

grpc::ServerUnaryReactor* RosterGrpcService::HandleSubscription(
    grpc::CallbackServerContext* context, const xmpp::roster::v1::SubscriptionRequest* request,
    xmpp::roster::v1::SubscriptionResponse* response) {
  return ServeOnLoop(loop_, context, [this, request, response]() -> Task<grpc::Status> {
    co_return ToGrpcStatus(
        co_await Subscription(*request, response->mutable_replies(), Origin()));
  });
}

grpc::ServerUnaryReactor* RosterGrpcService::CheckRoster(
    grpc::CallbackServerContext* context, const xmpp::roster::v1::CheckRosterRequest* request,
    xmpp::roster::v1::CheckRosterResponse* response) {
  return ServeOnLoop(loop_, context, [this, request, response]() -> Task<grpc::Status> {
    co_return ToGrpcStatus(co_await Check(*request, response));
  });
}

grpc::ServerUnaryReactor* RosterGrpcService::HandleBatch(
    grpc::CallbackServerContext* context, const xmpp::roster::v1::RosterBatchRequest* request,
    xmpp::roster::v1::RosterBatchResponse* response) {
  return ServeOnLoop(loop_, context,
                     [this, request, response] { return Batch(*request, response); });
}

}  // namespace xc
