#include "services/presence/presence_grpc_service.h"

#include "core/grpc/grpc_util.h"

namespace xc {
namespace {

grpc::Status BadArgument() {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed JID or stanza");
}

}  // namespace

grpc::Status PresenceGrpcService::BindSession(grpc::ServerContext*,
                                              const xmpp::presence::v1::BindSessionRequest* request,
                                              xmpp::presence::v1::BindSessionResponse* response) {
  absl::StatusOr<Jid> bare = Jid::Parse(request->bare_jid());
  if (!bare.ok()) return BadArgument();
  absl::StatusOr<std::string> full =
      router_->BindSession(request->gateway_id(), *bare, request->resource());
  if (!full.ok()) return ToGrpcStatus(full.status());
  response->set_full_jid(*full);
  return grpc::Status::OK;
}

grpc::Status PresenceGrpcService::EndSession(grpc::ServerContext*,
                                             const xmpp::presence::v1::EndSessionRequest* request,
                                             xmpp::presence::v1::EndSessionResponse*) {
  absl::StatusOr<Jid> full = Jid::Parse(request->full_jid());
  if (!full.ok()) return BadArgument();
  return ToGrpcStatus(router_->EndSession(*full));
}

grpc::Status PresenceGrpcService::SetInterested(
    grpc::ServerContext*, const xmpp::presence::v1::SetInterestedRequest* request,
    xmpp::presence::v1::SetInterestedResponse*) {
  absl::StatusOr<Jid> full = Jid::Parse(request->full_jid());
  if (!full.ok()) return BadArgument();
  return ToGrpcStatus(router_->SetInterested(*full));
}

grpc::Status PresenceGrpcService::HandlePresence(
    grpc::ServerContext*, const xmpp::presence::v1::HandlePresenceRequest* request,
    xmpp::presence::v1::HandlePresenceResponse* response) {
  absl::StatusOr<Jid> session = Jid::Parse(request->session_jid());
  absl::StatusOr<XmlElement> presence = FromStanzaProto(request->presence());
  if (!session.ok() || !presence.ok()) return BadArgument();
  absl::StatusOr<std::vector<XmlElement>> replies = router_->HandlePresence(*session, *presence);
  if (!replies.ok()) return ToGrpcStatus(replies.status());
  for (const XmlElement& r : *replies) ToStanzaProto(r, response->add_replies());
  return grpc::Status::OK;
}

grpc::Status PresenceGrpcService::RouteStanza(grpc::ServerContext*,
                                              const xmpp::presence::v1::RouteStanzaRequest* request,
                                              xmpp::presence::v1::RouteStanzaResponse* response) {
  absl::StatusOr<Jid> session = Jid::Parse(request->session_jid());
  absl::StatusOr<XmlElement> stanza = FromStanzaProto(request->stanza());
  if (!session.ok() || !stanza.ok()) return BadArgument();
  absl::StatusOr<std::vector<XmlElement>> replies = router_->RouteStanza(*session, *stanza);
  if (!replies.ok()) return ToGrpcStatus(replies.status());
  for (const XmlElement& r : *replies) ToStanzaProto(r, response->add_replies());
  return grpc::Status::OK;
}

grpc::Status PresenceGrpcService::Dispatch(grpc::ServerContext*,
                                           const xmpp::presence::v1::DispatchRequest* request,
                                           xmpp::presence::v1::DispatchResponse*) {
  return ToGrpcStatus(router_->Dispatch(*request));
}

}  // namespace xc
