#pragma once

#include <memory>
#include <vector>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/metrics/grpc_server_metrics.h"
#include "core/metrics/metrics.h"
#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "services/presence/presence_router.h"

namespace xc {

// The PresenceRouter gRPC surface over PresenceRouter (callback API): every call becomes a
// coroutine on `loop`. `router` must outlive it, and `registry` (may be null: no per-frame
// metrics for the stream methods) too.
class PresenceGrpcService final : public xmpp::presence::v1::PresenceRouter::CallbackService {
 public:
  PresenceGrpcService(EventLoop* loop, PresenceRouter* router,
                      metrics::Registry* registry = nullptr);

  grpc::ServerUnaryReactor* BindSession(grpc::CallbackServerContext*,
                                        const xmpp::presence::v1::BindSessionRequest*,
                                        xmpp::presence::v1::BindSessionResponse*) override;
  grpc::ServerUnaryReactor* EndSession(grpc::CallbackServerContext*,
                                       const xmpp::presence::v1::EndSessionRequest*,
                                       xmpp::presence::v1::EndSessionResponse*) override;
  grpc::ServerUnaryReactor* SetInterested(grpc::CallbackServerContext*,
                                          const xmpp::presence::v1::SetInterestedRequest*,
                                          xmpp::presence::v1::SetInterestedResponse*) override;
  grpc::ServerUnaryReactor* HandlePresence(grpc::CallbackServerContext*,
                                           const xmpp::presence::v1::HandlePresenceRequest*,
                                           xmpp::presence::v1::HandlePresenceResponse*) override;
  grpc::ServerUnaryReactor* RouteStanza(grpc::CallbackServerContext*,
                                        const xmpp::presence::v1::RouteStanzaRequest*,
                                        xmpp::presence::v1::RouteStanzaResponse*) override;
  grpc::ServerUnaryReactor* Dispatch(grpc::CallbackServerContext*,
                                     const xmpp::presence::v1::DispatchRequest*,
                                     xmpp::presence::v1::DispatchResponse*) override;
  grpc::ServerUnaryReactor* HandleBatch(grpc::CallbackServerContext*,
                                        const xmpp::presence::v1::RouterBatchRequest*,
                                        xmpp::presence::v1::RouterBatchResponse*) override;
  grpc::ServerUnaryReactor* DispatchBatch(grpc::CallbackServerContext*,
                                          const xmpp::presence::v1::DispatchBatchRequest*,
                                          xmpp::presence::v1::DispatchBatchResponse*) override;
  // HandleBatch's and DispatchBatch's calls as frames on long-lived streams.
  grpc::ServerBidiReactor<xmpp::presence::v1::RouterBatchFrame,
                          xmpp::presence::v1::RouterBatchReply>*
  HandleBatchStream(grpc::CallbackServerContext*) override;
  grpc::ServerBidiReactor<xmpp::presence::v1::DispatchBatchFrame,
                          xmpp::presence::v1::DispatchBatchReply>*
  DispatchBatchStream(grpc::CallbackServerContext*) override;

 private:
  using Replies = google::protobuf::RepeatedPtrField<xmpp::stanza::v1::Stanza>;
  Task<absl::Status> Bind(const xmpp::presence::v1::BindSessionRequest& request,
                          std::string* full_jid);
  Task<absl::Status> End(const xmpp::presence::v1::EndSessionRequest& request,
                         ReturnPath* back = nullptr);
  Task<absl::Status> Interested(const xmpp::presence::v1::SetInterestedRequest& request);
  Task<absl::Status> Presence(const xmpp::presence::v1::HandlePresenceRequest& request,
                              Replies* replies, ReturnPath* back = nullptr);
  Task<absl::Status> Route(const xmpp::presence::v1::RouteStanzaRequest& request,
                           Replies* replies, ReturnPath* back = nullptr);
  Task<bool> BatchInput(const xmpp::presence::v1::RouterInput& input,
                        const std::string& origin_gateway,
                        xmpp::presence::v1::RouterResult* result);
  Task<bool> Sequence(const xmpp::presence::v1::DispatchBatchRequest& request,
                      std::vector<int> flows,
                      xmpp::presence::v1::DispatchBatchResponse* response);
  Task<grpc::Status> Batch(const xmpp::presence::v1::RouterBatchRequest& request,
                           xmpp::presence::v1::RouterBatchResponse* response);
  Task<grpc::Status> Flows(const xmpp::presence::v1::DispatchBatchRequest& request,
                           xmpp::presence::v1::DispatchBatchResponse* response);

  EventLoop* loop_;
  PresenceRouter* router_;
  std::unique_ptr<metrics::CallMetrics> batch_metrics_;     // frames of HandleBatchStream
  std::unique_ptr<metrics::CallMetrics> dispatch_metrics_;  // frames of DispatchBatchStream
};

}  // namespace xc
