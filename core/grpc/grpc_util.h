#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/xml/xml_element.h"
#include "grpcpp/grpcpp.h"
#include "proto/xmpp/stanza/v1/stanza.pb.h"

namespace xc {

// Status translation at the gRPC edge (codes map one to one).
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A channel for service-to-service calls (plaintext on loopback / inside the cluster network).
std::shared_ptr<grpc::Channel> NewServiceChannel(const std::string& target);
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout);

// Stanza carrier conversions: the routing fields come from the element's attributes.
void ToStanzaProto(const XmlElement& element, xmpp::stanza::v1::Stanza* out);
xmpp::stanza::v1::Stanza ToStanzaProto(const XmlElement& element);
absl::StatusOr<XmlElement> FromStanzaProto(const xmpp::stanza::v1::Stanza& stanza);

}  // namespace xc
