#include "core/grpc/grpc_util.h"

#include <chrono>

#include "core/stanza/stanza.h"
#include "core/xml/xml_fragment.h"
#include "core/xml/xml_serializer.h"

namespace xc {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::shared_ptr<grpc::Channel> NewServiceChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetLoadBalancingPolicyName("round_robin");
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
}

void ToStanzaProto(const XmlElement& element, xmpp::stanza::v1::Stanza* out) {
  switch (KindOf(element)) {
    case StanzaKind::kMessage:
      out->set_kind(xmpp::stanza::v1::KIND_MESSAGE);
      break;
    case StanzaKind::kPresence:
      out->set_kind(xmpp::stanza::v1::KIND_PRESENCE);
      break;
    case StanzaKind::kIq:
      out->set_kind(xmpp::stanza::v1::KIND_IQ);
      break;
    case StanzaKind::kUnknown:
      out->set_kind(xmpp::stanza::v1::KIND_UNSPECIFIED);
      break;
  }
  out->set_type(element.Attribute("type"));
  out->set_from(element.Attribute("from"));
  out->set_to(element.Attribute("to"));
  out->set_id(element.Attribute("id"));
  out->set_xml(SerializeXml(element));
}

xmpp::stanza::v1::Stanza ToStanzaProto(const XmlElement& element) {
  xmpp::stanza::v1::Stanza s;
  ToStanzaProto(element, &s);
  return s;
}

absl::StatusOr<XmlElement> FromStanzaProto(const xmpp::stanza::v1::Stanza& stanza) {
  return ParseStanzaXml(stanza.xml());
}

}  // namespace xc
