#include "services/presence/presence_grpc_service.h"

#include <string>
#include <vector>

#include "core/grpc/grpc_util.h"
#include "core/grpc/serve_on_loop.h"
#include "core/grpc/serve_stream.h"

namespace xc {
namespace {

absl::Status BadArgument() { return absl::InvalidArgumentError("malformed JID or stanza"); }

template <typename Result>
void SetStatus(const absl::Status& status, Result* result) {
  result->set_code(static_cast<int32_t>(status.code()));
  result->set_message(std::string(status.message()));
}

}  // namespace

Task<absl::Status> PresenceGrpcService::Bind(
    const xmpp::presence::v1::BindSessionRequest& request, std::string* full_jid) {
  absl::StatusOr<Jid> bare = Jid::Parse(request.bare_jid());
  if (!bare.ok()) co_return BadArgument();
  absl::StatusOr<std::string> full =
      co_await router_->BindSession(request.gateway_id(), *bare, request.resource());
  if (!full.ok()) co_return full.status();
  *full_jid = *std::move(full);
  co_return absl::OkStatus();
}

Task<absl::Status> PresenceGrpcService::End(const xmpp::presence::v1::EndSessionRequest& request,
                                            ReturnPath* back) {
  absl::StatusOr<Jid> full = Jid::Parse(request.full_jid());
  if (!full.ok()) co_return BadArgument();
  co_return co_await router_->EndSession(*full, back);
}

Task<absl::Status> PresenceGrpcService::Interested(
    const xmpp::presence::v1::SetInterestedRequest& request) {
  absl::StatusOr<Jid> full = Jid::Parse(request.full_jid());
  if (!full.ok()) co_return BadArgument();
  co_return co_await router_->SetInterested(*full);
}

Task<absl::Status> PresenceGrpcService::Presence(
    const xmpp::presence::v1::HandlePresenceRequest& request, Replies* replies, ReturnPath* back) {
  absl::StatusOr<Jid> session = Jid::Parse(request.session_jid());
  absl::StatusOr<XmlElement> presence = FromStanzaProto(request.presence());
  if (!session.ok() || !presence.ok()) co_return BadArgument();
  absl::StatusOr<std::vector<XmlElement>> out =
      co_await router_->HandlePresence(*session, *presence, back);
  if (!out.ok()) co_return out.status();
  for (const XmlElement& r : *out) ToStanzaProto(r, replies->Add());
  co_return absl::OkStatus();
}

Task<absl::Status> PresenceGrpcService::Route(const xmpp::presence::v1::RouteStanzaRequest& request,
                                              Replies* replies, ReturnPath* back) {
  absl::StatusOr<Jid> session = Jid::Parse(request.session_jid());
  absl::StatusOr<XmlElement> stanza = FromStanzaProto(request.stanza());
  if (!session.ok() || !stanza.ok()) co_return BadArgument();
  absl::StatusOr<std::vector<XmlElement>> out =
      co_await router_->RouteStanza(*session, *stanza, back);
  if (!out.ok()) co_return out.status();
  for (const XmlElement& r : *out) ToStanzaProto(r, replies->Add());
  co_return absl::OkStatus();
}

Task<bool> PresenceGrpcService::BatchInput(const xmpp::presence::v1::RouterInput& input,
                                           const std::string& origin_gateway,
                                           xmpp::presence::v1::RouterResult* result) {
  ReturnPath back{origin_gateway, result->mutable_origin_items()};
  ReturnPath* path = origin_gateway.empty() ? nullptr : &back;
  absl::Status status;
  switch (input.input_case()) {
    case xmpp::presence::v1::RouterInput::kBindSession:
      status = co_await Bind(input.bind_session(), result->mutable_full_jid());
      break;
    case xmpp::presence::v1::RouterInput::kEndSession:
      status = co_await End(input.end_session(), path);
      break;
    case xmpp::presence::v1::RouterInput::kSetInterested:
      status = co_await Interested(input.set_interested());
      break;
    case xmpp::presence::v1::RouterInput::kPresence:
      status = co_await Presence(input.presence(), result->mutable_replies(), path);
      break;
    case xmpp::presence::v1::RouterInput::kRoute:
      status = co_await Route(input.route(), result->mutable_replies(), path);
      break;
    default:
      status = absl::InvalidArgumentError("empty router input");
  }
  if (!status.ok()) {
    result->Clear();
    SetStatus(status, result);
  }
  co_return true;
}

// Flows joined by after_previous run one after another, as one sequence; sequences run
// concurrently.
Task<bool> PresenceGrpcService::Sequence(const xmpp::presence::v1::DispatchBatchRequest& request,
                                         std::vector<int> flows,
                                         xmpp::presence::v1::DispatchBatchResponse* response) {
  std::vector<const xmpp::presence::v1::DispatchRequest*> requests;
  std::vector<ReturnPath> backs(flows.size());
  std::vector<ReturnPath*> back_of;
  for (size_t k = 0; k < flows.size(); ++k) {
    const xmpp::presence::v1::DispatchRequest& flow = request.flows(flows[k]);
    requests.push_back(&flow);
    backs[k] = ReturnPath{flow.origin_gateway(),
                          response->mutable_results(flows[k])->mutable_origin_items()};
    back_of.push_back(flow.origin_gateway().empty() ? nullptr : &backs[k]);
  }
  std::vector<absl::Status> done =
      co_await router_->DispatchSequence(std::move(requests), std::move(back_of));
  for (size_t k = 0; k < flows.size(); ++k) {
    if (done[k].ok()) continue;
    xmpp::presence::v1::FlowResult* result = response->mutable_results(flows[k]);
    result->Clear();
    SetStatus(done[k], result);
  }
  co_return true;
}

Task<grpc::Status> PresenceGrpcService::Batch(const xmpp::presence::v1::RouterBatchRequest& request,
                                              xmpp::presence::v1::RouterBatchResponse* response) {
  std::vector<Task<bool>> inputs;
  inputs.reserve(request.inputs_size());
  for (const xmpp::presence::v1::RouterInput& input : request.inputs()) {
    inputs.push_back(BatchInput(input, request.origin_gateway(), response->add_results()));
  }
  co_await WhenAll(std::move(inputs));
  co_return grpc::Status::OK;
}

Task<grpc::Status> PresenceGrpcService::Flows(
    const xmpp::presence::v1::DispatchBatchRequest& request,
    xmpp::presence::v1::DispatchBatchResponse* response) {
  std::vector<std::vector<int>> sequences;
  for (int i = 0; i < request.flows_size(); ++i) {
    response->add_results();
    if (request.flows(i).after_previous() && !sequences.empty()) {
      sequences.back().push_back(i);
    } else {
      sequences.emplace_back(1, i);
    }
  }
  std::vector<Task<bool>> tasks;
  tasks.reserve(sequences.size());
  for (std::vector<int>& flows : sequences) {
    tasks.push_back(Sequence(request, std::move(flows), response));
  }
  co_await WhenAll(std::move(tasks));
  co_return grpc::Status::OK;
}

PresenceGrpcService::PresenceGrpcService(PresenceRouter* router, metrics::Registry* registry)
    : router_(router) {
  if (registry != nullptr) {
    // Counted as calls of the unary methods they stand for.
    batch_metrics_ = std::make_unique<metrics::CallMetrics>(
        registry, "xmpp.presence.v1.PresenceRouter", "HandleBatch");
    dispatch_metrics_ = std::make_unique<metrics::CallMetrics>(
        registry, "xmpp.presence.v1.PresenceRouter", "DispatchBatch");
  }
}

void PresenceGrpcService::Serve(GrpcQueue* queue) {
  using Service = xmpp::presence::v1::PresenceRouter::AsyncService;
  namespace pv1 = xmpp::presence::v1;
  ServeUnary(queue, &async_, &Service::RequestBindSession,
             [this](const pv1::BindSessionRequest& request,
                    pv1::BindSessionResponse* response) -> Task<grpc::Status> {
               co_return ToGrpcStatus(co_await Bind(request, response->mutable_full_jid()));
             });
  ServeUnary(queue, &async_, &Service::RequestEndSession,
             [this](const pv1::EndSessionRequest& request, pv1::EndSessionResponse*)
                 -> Task<grpc::Status> { co_return ToGrpcStatus(co_await End(request)); });
  ServeUnary(queue, &async_, &Service::RequestSetInterested,
             [this](const pv1::SetInterestedRequest& request, pv1::SetInterestedResponse*)
                 -> Task<grpc::Status> { co_return ToGrpcStatus(co_await Interested(request)); });
  ServeUnary(queue, &async_, &Service::RequestHandlePresence,
             [this](const pv1::HandlePresenceRequest& request,
                    pv1::HandlePresenceResponse* response) -> Task<grpc::Status> {
               co_return ToGrpcStatus(co_await Presence(request, response->mutable_replies()));
             });
  ServeUnary(queue, &async_, &Service::RequestRouteStanza,
             [this](const pv1::RouteStanzaRequest& request,
                    pv1::RouteStanzaResponse* response) -> Task<grpc::Status> {
               co_return ToGrpcStatus(co_await Route(request, response->mutable_replies()));
             });
  ServeUnary(
      queue, &async_, &Service::RequestDispatch,
      [this](const pv1::DispatchRequest& request, pv1::DispatchResponse*) -> Task<grpc::Status> {
        co_return ToGrpcStatus(co_await router_->Dispatch(request));
      });
  auto batch = [this](const pv1::RouterBatchRequest& request, pv1::RouterBatchResponse* response) {
    return Batch(request, response);
  };
  auto flows = [this](const pv1::DispatchBatchRequest& request,
                      pv1::DispatchBatchResponse* response) { return Flows(request, response); };
  ServeUnary(queue, &async_, &Service::RequestHandleBatch, batch);
  ServeUnary(queue, &async_, &Service::RequestDispatchBatch, flows);
  ServeStream(queue, &async_, &Service::RequestHandleBatchStream, batch_metrics_.get(), batch);
  ServeStream(queue, &async_, &Service::RequestDispatchBatchStream, dispatch_metrics_.get(), flows);
}

}  // namespace xc
