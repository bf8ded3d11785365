#include "services/roster/roster_grpc_service.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/grpc/grpc_util.h"
#include "core/grpc/serve_on_loop.h"
#include "core/grpc/serve_stream.h"
#include "core/grpc/unary_call.h"

namespace xc {

// One run of a session's chain (see Runs): its inputs, and the pair of entries each
// subscription input touches ([k] for inputs[k]; nullopt: it touches none it could share).
struct RosterRun {
  struct Pair {
    Jid user;
    Jid contact;
  };
  std::vector<int> inputs;
  std::vector<std::optional<Pair>> pairs;
};

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

RosterGrpcService::RosterGrpcService(GrpcQueue* queue, RosterProcessor* processor,
                                     RosterConsistency* consistency,
                                     xmpp::presence::v1::PresenceRouter::Stub* router,
                                     metrics::Registry* registry, bool dispatch_streams)
    : loop_(queue->loop()),
      processor_(processor),
      consistency_(consistency),
      batch_metrics_(registry, "xmpp.roster.v1.RosterService", "HandleBatch"),
      dispatch_stream_(
          queue,
          [router](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
            return router->PrepareAsyncDispatchBatchStream(c, cq);
          },
          UnaryStart<xmpp::presence::v1::DispatchBatchRequest,
                     xmpp::presence::v1::DispatchBatchResponse>(
              queue,
              [router](grpc::ClientContext* c, const xmpp::presence::v1::DispatchBatchRequest& r,
                       grpc::CompletionQueue* cq) {
                return router->PrepareAsyncDispatchBatch(c, r, cq);
              }),
          StreamCallsOptions::Enabled(dispatch_streams)),
      dispatch_(loop_, dispatch_stream_.AsStart(), DispatchBatching(registry)),
      requests_(&registry->AddCounter("xc_roster_requests_total",
                                      "Roster IQs and subscription stanzas, by type.")),
      effects_(&registry->AddCounter("xc_roster_effects_total",
                                     "Effects handed to the router, by kind.")),
      dispatch_seconds_(
          &registry
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
  std::vector<const RosterOutput*> outputs(1, &output);
  std::vector<google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>*> items(
      1, origin.items);
  std::vector<absl::Status> done =
      co_await DispatchInOrder(std::move(outputs), origin.gateway, std::move(items));
  co_return done[0];
}

// The outputs' effects go to the router as one sequence (after_previous): each flow takes
// effect only after the one before it has, and a flow that fails transiently is sent again,
// with every flow after it, within a bound (a flow that fails for good is answered with its
// error, and the rest go on without it).
Task<std::vector<absl::Status>> RosterGrpcService::DispatchInOrder(
    std::vector<const RosterOutput*> outputs, std::string origin_gateway,
    std::vector<google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>*> items) {
  const size_t n = outputs.size();
  std::vector<absl::Status> done(n);
  for (const RosterOutput* output : outputs) {
    for (const auto& e : output->effects) {
      const char* kind = e.has_presence_snapshot() ? "presence"
                         : e.delivery().stanza().kind() == xmpp::stanza::v1::KIND_IQ
                             ? "push"
                             : "delivery";
      effects_->Add({{"kind", kind}}).Increment();
    }
  }
  const int64_t start = EventLoop::NowNanos();
  const absl::Duration first_backoff = absl::Milliseconds(20);
  absl::Duration backoff = first_backoff;
  int attempt = 0;
  size_t next = 0;
  while (next < n) {
    auto answer = co_await dispatch_.Call([&](xmpp::presence::v1::DispatchBatchRequest* r) {
      for (size_t k = next; k < n; ++k) {
        xmpp::presence::v1::DispatchRequest* flow = r->add_flows();
        for (const auto& effect : outputs[k]->effects) *flow->add_effects() = effect;
        if (items[k] != nullptr) flow->set_origin_gateway(origin_gateway);
        flow->set_after_previous(k > next);
      }
      return static_cast<int>(n - next);
    });
    size_t failed = n;
    grpc::Status why = answer.status;
    if (!why.ok()) failed = next;
    for (size_t k = next; k < n && failed == n; ++k) {
      const int index = answer.slice.first + static_cast<int>(k - next);
      if (index >= answer.response->results_size()) {
        why = grpc::Status(grpc::StatusCode::INTERNAL, "router answered fewer flows than sent");
        failed = k;
        break;
      }
      const xmpp::presence::v1::FlowResult& r = answer.response->results(index);
      if (r.code() != 0) {
        why = grpc::Status(static_cast<grpc::StatusCode>(r.code()), r.message());
        failed = k;
        break;
      }
      if (items[k] != nullptr) *items[k] = r.origin_items();
      dispatch_seconds_->Observe(static_cast<double>(EventLoop::NowNanos() - start) * 1e-9);
    }
    if (failed == n) break;
    if (failed > next) {  // progress: the failed flow gets its own attempts
      attempt = 0;
      backoff = first_backoff;
    }
    next = failed;
    if (Transient(why) && attempt < 3) {
      ++attempt;
      co_await Sleep(loop_, backoff);
      backoff *= 3;
      continue;
    }
    dispatch_failures_->Increment();
    XC_LOG(WARNING) << "dispatch to router failed: " << why.error_message();
    done[failed] = FromGrpcStatus(why);
    next = failed + 1;
    attempt = 0;
    backoff = first_backoff;
  }
  co_return done;
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
  Finish(*output, replies);
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
    const xmpp::roster::v1::SubscriptionRequest& request, ReadAhead* read_ahead) {
  absl::StatusOr<Jid> session = Jid::Parse(request.session_jid());
  absl::StatusOr<XmlElement> presence = FromStanzaProto(request.presence());
  if (!session.ok() || !presence.ok()) {
    co_return absl::InvalidArgumentError("bad session or stanza");
  }
  requests_->Add({{"type", request.presence().type()}}).Increment();
  bool first = true;
  co_return co_await Compute([&] {
    // The reads done ahead serve the first attempt only: a run again after a failure reads anew.
    if (!first) read_ahead->reset();
    first = false;
    return processor_->HandleSubscription(*session, *presence, read_ahead);
  });
}

namespace {

Task<absl::StatusOr<RosterOutput>> Failed(absl::Status status) { co_return status; }

}  // namespace

// Not a coroutine: an input's task is the one this picks, with no frame of its own.
Task<absl::StatusOr<RosterOutput>> RosterGrpcService::ComputeInput(
    const xmpp::roster::v1::RosterInput& input, ReadAhead* read_ahead) {
  if (input.has_roster_iq()) return ComputeIq(input.roster_iq());
  if (input.has_subscription()) return ComputeSubscription(input.subscription(), read_ahead);
  return Failed(absl::InvalidArgumentError("empty roster input"));
}

Task<absl::Status> RosterGrpcService::RosterIq(const xmpp::roster::v1::RosterIqRequest& request,
                                               Replies* replies, Origin origin) {
  absl::StatusOr<RosterOutput> output = co_await ComputeIq(request);
  co_return co_await Complete(std::move(output), replies, origin);
}

Task<absl::Status> RosterGrpcService::Subscription(
    const xmpp::roster::v1::SubscriptionRequest& request, Replies* replies, Origin origin) {
  ReadAhead none;
  absl::StatusOr<RosterOutput> output = co_await ComputeSubscription(request, &none);
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

void RosterGrpcService::Finish(const RosterOutput& output, Replies* replies) {
  Record(output);
  for (const XmlElement& reply : output.replies) ToStanzaProto(reply, replies->Add());
}

namespace {

void SetError(const absl::Status& status, xmpp::roster::v1::RosterResult* result) {
  result->clear_replies();
  result->clear_deliveries();
  result->set_code(static_cast<int>(status.code()));
  result->set_message(std::string(status.message()));
}

}  // namespace

Task<bool> RosterGrpcService::CompleteRun(std::vector<absl::StatusOr<RosterOutput>> outputs,
                                          const std::string& origin_gateway,
                                          std::vector<xmpp::roster::v1::RosterResult*> results) {
  std::vector<size_t> sent;  // outputs with effects, in order
  std::vector<const RosterOutput*> flows;
  std::vector<google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>*> items;
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (!outputs[k].ok()) {
      SetError(outputs[k].status(), results[k]);
    } else if (outputs[k]->effects.empty()) {
      Finish(*outputs[k], results[k]->mutable_replies());
    } else {
      sent.push_back(k);
      flows.push_back(&*outputs[k]);
      items.push_back(origin_gateway.empty() ? nullptr : results[k]->mutable_deliveries());
    }
  }
  if (sent.empty()) co_return true;
  std::vector<absl::Status> done =
      co_await DispatchInOrder(std::move(flows), origin_gateway, std::move(items));
  for (size_t j = 0; j < sent.size(); ++j) {
    if (done[j].ok()) {
      Finish(*outputs[sent[j]], results[sent[j]]->mutable_replies());
    } else {
      SetError(done[j], results[sent[j]]);
    }
  }
  co_return true;
}

namespace {

const std::string& SessionOf(const xmpp::roster::v1::RosterInput& input) {
  return input.has_roster_iq() ? input.roster_iq().session_jid()
                               : input.subscription().session_jid();
}

// The entries a subscription input's flow touches are those of its pair: the user's for the
// contact and the contact's for the user. The pair comes from the request's fields (the
// gateway fills `to` from the stanza it sends); nullopt when the input touches no entry (a
// stanza to oneself, to a domain or to a malformed address changes nothing).
std::optional<RosterRun::Pair> PairOf(const xmpp::roster::v1::SubscriptionRequest& s) {
  absl::StatusOr<Jid> user = Jid::Parse(s.session_jid());
  absl::StatusOr<Jid> contact = Jid::Parse(s.presence().to());
  if (!user.ok() || !contact.ok()) return std::nullopt;
  RosterRun::Pair pair{user->Bare(), contact->Bare()};
  if (pair.contact.local().empty() || pair.contact == pair.user) return std::nullopt;
  return pair;
}

// Inputs of one run at most: longer chains (a client's burst) become several runs, the next
// one's state changes computed while the one before is with the router, which bounds what one
// session holds in flight.
constexpr size_t kMaxRun = 4;

// A chain's runs: a roster IQ (which may touch any entry of the roster) is a run of its own;
// subscription inputs join the current run until one has the contact of an input already in
// it, or the run is full. The inputs of a run touch disjoint entries.
std::vector<RosterRun> Runs(const xmpp::roster::v1::RosterBatchRequest& request,
                            const std::vector<int>& chain) {
  std::vector<RosterRun> runs;
  bool open = false;  // the current run takes more subscription inputs
  for (int index : chain) {
    const xmpp::roster::v1::RosterInput& input = request.inputs(index);
    if (!input.has_subscription()) {
      runs.push_back(RosterRun{{index}, {std::nullopt}});
      open = false;
      continue;
    }
    std::optional<RosterRun::Pair> pair = PairOf(input.subscription());
    const bool repeated =
        pair.has_value() && open &&
        std::any_of(runs.back().pairs.begin(), runs.back().pairs.end(),
                    [&](const std::optional<RosterRun::Pair>& p) {
                      return p.has_value() && p->contact == pair->contact;
                    });
    if (!open || repeated || runs.back().inputs.size() >= kMaxRun) {
      runs.emplace_back();
      open = true;
    }
    runs.back().inputs.push_back(index);
    runs.back().pairs.push_back(std::move(pair));
  }
  return runs;
}

}  // namespace

// The first reads of a run's subscription inputs (both entries of each pair), all in one
// round trip; [k] for run.inputs[k]. They only seed the compare-and-swaps: what another
// session changes meanwhile makes a step fail its swap and read again.
Task<std::vector<RosterGrpcService::ReadAhead>> RosterGrpcService::ReadRun(const RosterRun& run) {
  std::vector<ReadAhead> ahead(run.inputs.size());
  std::vector<Task<bool>> reads;
  for (size_t k = 0; k < run.pairs.size(); ++k) {
    if (!run.pairs[k]) continue;
    ahead[k].emplace(RosterProcessor::SubscriptionReads{run.pairs[k]->user, run.pairs[k]->contact});
    reads.push_back(processor_->ReadPair(&*ahead[k]));
  }
  if (!reads.empty()) co_await WhenAll(std::move(reads));
  co_return ahead;
}

// A run's state changes, all at once: its inputs touch disjoint entries, so running them
// together ends where running them one after another would. Each one's first write leaves in
// the order of the run (one connection, one turn), so a user's roster versions still follow
// the stream.
Task<std::vector<absl::StatusOr<RosterOutput>>> RosterGrpcService::ComputeRun(
    const xmpp::roster::v1::RosterBatchRequest& request, const RosterRun& run) {
  std::vector<ReadAhead> ahead;
  if (run.inputs.size() > 1) ahead = co_await ReadRun(run);
  ahead.resize(run.inputs.size());
  std::vector<Task<absl::StatusOr<RosterOutput>>> tasks;
  tasks.reserve(run.inputs.size());
  for (size_t k = 0; k < run.inputs.size(); ++k) {
    tasks.push_back(ComputeInput(request.inputs(run.inputs[k]), &ahead[k]));  // `ahead` outlives
  }
  co_return co_await WhenAll(std::move(tasks));
}

// One session's inputs, in order (RFC 6120 §10.1), a run at a time (see Runs): a run's state
// changes are computed together, then its effects go to the router as one sequence, which
// delivers them in the stream's order. The next run's state changes are computed while the
// run before it is with the router: they change only roster entries, which a dispatch does
// not read.
Task<bool> RosterGrpcService::BatchChain(const xmpp::roster::v1::RosterBatchRequest& request,
                                         std::vector<int> chain,
                                         xmpp::roster::v1::RosterBatchResponse* response) {
  if (chain.empty()) co_return true;
  const std::vector<RosterRun> runs = Runs(request, chain);
  std::vector<absl::StatusOr<RosterOutput>> outputs = co_await ComputeRun(request, runs[0]);
  for (size_t r = 0; r < runs.size(); ++r) {
    std::vector<xmpp::roster::v1::RosterResult*> results;
    for (int index : runs[r].inputs) results.push_back(response->mutable_results(index));
    Task<bool> complete =
        CompleteRun(std::move(outputs), request.origin_gateway(), std::move(results));
    if (r + 1 == runs.size()) {
      co_await std::move(complete);
      break;
    }
    auto [completed, next] =
        co_await WhenBoth(std::move(complete), ComputeRun(request, runs[r + 1]));
    outputs = std::move(next);
  }
  co_return true;
}

// Inputs of different sessions run concurrently; the inputs of one session (a gateway sends a
// stream's queued subscriptions together) form a chain that takes effect in request order
// (BatchChain): the stream is processed in order (RFC 6120 §10.1).
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

void RosterGrpcService::Serve(GrpcQueue* queue) {
  using xmpp::roster::v1::RosterService;
  ServeUnary(
      queue, &async_, &RosterService::AsyncService::RequestHandleRosterIq,
      [this](const xmpp::roster::v1::RosterIqRequest& request,
             xmpp::roster::v1::RosterIqResponse* response) -> Task<grpc::Status> {
        co_return ToGrpcStatus(co_await RosterIq(request, response->mutable_replies(), Origin()));
      });
  ServeUnary(queue, &async_, &RosterService::AsyncService::RequestHandleSubscription,
             [this](const xmpp::roster::v1::SubscriptionRequest& request,
                    xmpp::roster::v1::SubscriptionResponse* response) -> Task<grpc::Status> {
               co_return ToGrpcStatus(
                   co_await Subscription(request, response->mutable_replies(), Origin()));
             });
  ServeUnary(queue, &async_, &RosterService::AsyncService::RequestCheckRoster,
             [this](const xmpp::roster::v1::CheckRosterRequest& request,
                    xmpp::roster::v1::CheckRosterResponse* response) -> Task<grpc::Status> {
               co_return ToGrpcStatus(co_await Check(request, response));
             });
  auto batch = [this](const xmpp::roster::v1::RosterBatchRequest& request,
                      xmpp::roster::v1::RosterBatchResponse* response) {
    return Batch(request, response);
  };
  ServeUnary(queue, &async_, &RosterService::AsyncService::RequestHandleBatch, batch);
  ServeStream(queue, &async_, &RosterService::AsyncService::RequestHandleBatchStream,
              &batch_metrics_, batch);
}

}  // namespace xc
