#pragma once

#include <memory>
#include <vector>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/grpc/grpc_queue.h"
#include "core/grpc/serve_on_loop.h"
#include "core/metrics/grpc_server_metrics.h"
#include "core/metrics/metrics.h"
#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "services/presence/presence_router.h"

namespace xc {

// The PresenceRouter gRPC surface over PresenceRouter, served on the process's GrpcQueue:
// every call becomes a coroutine on the queue's loop. `router` must outlive it, and `registry`
// (may be null: no per-frame metrics for the stream methods) too.
class PresenceGrpcService final : public QueuedService {
 public:
  explicit PresenceGrpcService(PresenceRouter* router, metrics::Registry* registry = nullptr);

  grpc::Service* grpc_service() override { return &async_; }
  // BindSession, EndSession, SetInterested, HandlePresence, RouteStanza, Dispatch, HandleBatch,
  // DispatchBatch, and HandleBatch's and DispatchBatch's calls as frames on long-lived streams
  // (HandleBatchStream, DispatchBatchStream).
  void Serve(GrpcQueue* queue) override;

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

  xmpp::presence::v1::PresenceRouter::AsyncService async_;
  PresenceRouter* router_;
  std::unique_ptr<metrics::CallMetrics> batch_metrics_;     // frames of HandleBatchStream
  std::unique_ptr<metrics::CallMetrics> dispatch_metrics_;  // frames of DispatchBatchStream
};

}  // namespace xc
