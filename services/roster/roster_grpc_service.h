#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/grpc/call_batcher.h"
#include "core/grpc/grpc_queue.h"
#include "core/grpc/serve_on_loop.h"
#include "core/grpc/stream_calls.h"
#include "core/metrics/grpc_server_metrics.h"
#include "core/metrics/metrics.h"
#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "proto/xmpp/roster/v1/roster.grpc.pb.h"
#include "services/roster/roster_consistency.h"
#include "services/roster/roster_processor.h"

namespace xc {

struct RosterRun;  // roster_grpc_service.cc

// Where a flow's deliveries to the calling gateway's sessions go: back in the answer (`items`),
// or with `items` null through the router's Deliver like any other.
struct FlowOrigin {
  std::string gateway;
  google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>* items = nullptr;
};

// The RosterService gRPC surface, served on the process's GrpcQueue: every call becomes a
// coroutine on the queue's loop, which runs the processor, hands the effects to the presence
// router (batched with other flows' effects, retried within a bound), then answers.
// `processor`, `consistency` and `router` must outlive it. With `dispatch_streams` the effects
// travel as frames on long-lived streams (DispatchBatchStream) instead of one DispatchBatch
// call each.
class RosterGrpcService final : public QueuedService {
 public:
  RosterGrpcService(GrpcQueue* queue, RosterProcessor* processor, RosterConsistency* consistency,
                    xmpp::presence::v1::PresenceRouter::Stub* router, metrics::Registry* registry,
                    bool dispatch_streams = false);

  grpc::Service* grpc_service() override { return &async_; }
  // HandleRosterIq, HandleSubscription, CheckRoster, HandleBatch, and HandleBatch's calls as
  // frames on long-lived streams (HandleBatchStream).
  void Serve(GrpcQueue* queue) override;

 private:
  using Replies = google::protobuf::RepeatedPtrField<xmpp::stanza::v1::Stanza>;
  using Origin = FlowOrigin;
  // (No default arguments on coroutines' by-value class parameters: GCC 12 copies such a
  // default into the frame bitwise, and a std::string in it then frees its caller's buffer.)
  Task<absl::Status> RosterIq(const xmpp::roster::v1::RosterIqRequest& request, Replies* replies,
                              Origin origin);
  Task<absl::Status> Subscription(const xmpp::roster::v1::SubscriptionRequest& request,
                                  Replies* replies, Origin origin);
  Task<absl::Status> Check(const xmpp::roster::v1::CheckRosterRequest& request,
                           xmpp::roster::v1::CheckRosterResponse* response);
  Task<grpc::Status> Batch(const xmpp::roster::v1::RosterBatchRequest& request,
                           xmpp::roster::v1::RosterBatchResponse* response);
  Task<bool> BatchChain(const xmpp::roster::v1::RosterBatchRequest& request,
                        std::vector<int> chain,
                        xmpp::roster::v1::RosterBatchResponse* response);
  // An input's state change (parsed, run again after transient failures within a bound)...
  // `read_ahead` is the entries read for it, if any (HandleSubscription's `reads`: kept by the
  // caller until the task ends).
  using ReadAhead = std::optional<RosterProcessor::SubscriptionReads>;
  Task<absl::StatusOr<RosterOutput>> ComputeInput(const xmpp::roster::v1::RosterInput& input,
                                                  ReadAhead* read_ahead);
  // A run of a chain's inputs that touch disjoint entries (see BatchChain), all at once, after
  // their first reads (ReadRun: [k] for the run's k-th input).
  Task<std::vector<absl::StatusOr<RosterOutput>>> ComputeRun(
      const xmpp::roster::v1::RosterBatchRequest& request, const RosterRun& run);
  Task<std::vector<ReadAhead>> ReadRun(const RosterRun& run);
  Task<absl::StatusOr<RosterOutput>> ComputeIq(const xmpp::roster::v1::RosterIqRequest& request);
  Task<absl::StatusOr<RosterOutput>> ComputeSubscription(
      const xmpp::roster::v1::SubscriptionRequest& request, ReadAhead* read_ahead);
  Task<absl::StatusOr<RosterOutput>> Compute(
      std::function<Task<absl::StatusOr<RosterOutput>>()> flow);
  // ...then its effects dispatched and its replies filled.
  Task<absl::Status> Complete(absl::StatusOr<RosterOutput> output, Replies* replies,
                              Origin origin);
  // A run's outputs: their effects dispatched in order (DispatchInOrder), then results[k]
  // filled from outputs[k] (replies, deliveries for the origin gateway, or the error).
  Task<bool> CompleteRun(std::vector<absl::StatusOr<RosterOutput>> outputs,
                         const std::string& origin_gateway,
                         std::vector<xmpp::roster::v1::RosterResult*> results);
  // A completed output's metrics and replies.
  void Finish(const RosterOutput& output, Replies* replies);
  Task<absl::Status> DispatchEffects(const RosterOutput& output, Origin origin);
  // items[k] (null: none) receives what outputs[k] delivers to origin_gateway's sessions.
  Task<std::vector<absl::Status>> DispatchInOrder(
      std::vector<const RosterOutput*> outputs, std::string origin_gateway,
      std::vector<google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>*> items);
  void Record(const RosterOutput& output);

  xmpp::roster::v1::RosterService::AsyncService async_;
  EventLoop* loop_;
  RosterProcessor* processor_;
  RosterConsistency* consistency_;
  metrics::CallMetrics batch_metrics_;  // HandleBatchStream's frames, as HandleBatch calls
  using DispatchStream =
      StreamCalls<xmpp::presence::v1::DispatchBatchFrame, xmpp::presence::v1::DispatchBatchReply>;
  DispatchStream dispatch_stream_;  // before dispatch_, which calls through it
  CallBatcher<xmpp::presence::v1::DispatchBatchRequest, xmpp::presence::v1::DispatchBatchResponse>
      dispatch_;
  metrics::Family<metrics::Counter>* requests_;
  metrics::Family<metrics::Counter>* effects_;
  metrics::Histogram* dispatch_seconds_;
  metrics::Counter* dispatch_failures_;
  metrics::Counter* flow_retries_;
  metrics::Family<metrics::Counter>* repairs_;
  metrics::Family<metrics::Counter>* transitions_;
  metrics::Counter* requests_stored_;
  metrics::Counter* requests_cleared_;
};

}  // namespace xc
