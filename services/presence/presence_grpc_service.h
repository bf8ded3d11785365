#pragma once

#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "services/presence/presence_router.h"

namespace xc {

// The PresenceRouter gRPC surface over PresenceRouter. `router` must outlive it.
class PresenceGrpcService final : public xmpp::presence::v1::PresenceRouter::Service {
 public:
  explicit PresenceGrpcService(PresenceRouter* router) : router_(router) {}

  grpc::Status BindSession(grpc::ServerContext*, const xmpp::presence::v1::BindSessionRequest*,
                           xmpp::presence::v1::BindSessionResponse*) override;
  grpc::Status EndSession(grpc::ServerContext*, const xmpp::presence::v1::EndSessionRequest*,
                          xmpp::presence::v1::EndSessionResponse*) override;
  grpc::Status SetInterested(grpc::ServerContext*, const xmpp::presence::v1::SetInterestedRequest*,
                             xmpp::presence::v1::SetInterestedResponse*) override;
  grpc::Status HandlePresence(grpc::ServerContext*,
                              const xmpp::presence::v1::HandlePresenceRequest*,
                              xmpp::presence::v1::HandlePresenceResponse*) override;
  grpc::Status RouteStanza(grpc::ServerContext*, const xmpp::presence::v1::RouteStanzaRequest*,
                           xmpp::presence::v1::RouteStanzaResponse*) override;
  grpc::Status Dispatch(grpc::ServerContext*, const xmpp::presence::v1::DispatchRequest*,
                        xmpp::presence::v1::DispatchResponse*) override;

 private:
  PresenceRouter* router_;
};

}  // namespace xc
