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

// Service-to-service gRPC security. Plaintext by default (loopback, the local cluster); with
// --grpc_tls_ca, --grpc_tls_cert and --grpc_tls_key every server requires and verifies a client
// certificate from that CA, and every client presents its own and verifies the server's, whose
// certificate must name --grpc_tls_server_name (one name for all services, so that clients can
// dial pod IPs). Reads the files once, at first use; a missing or bad file stops the process.
std::shared_ptr<grpc::ChannelCredentials> ServiceChannelCredentials();
std::shared_ptr<grpc::ServerCredentials> ServiceServerCredentials();

// A channel for service-to-service calls (round_robin over every address `target` resolves to).
std::shared_ptr<grpc::Channel> NewServiceChannel(const std::string& target);
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout);
// --grpc_streams (default true): batch calls between services travel as frames on long-lived
// streams (core/grpc/stream_calls.h) instead of one unary call each.
bool UseGrpcStreams();

// Stanza carrier conversions: the routing fields come from the element's attributes.
void ToStanzaProto(const XmlElement& element, xmpp::stanza::v1::Stanza* out);
xmpp::stanza::v1::Stanza ToStanzaProto(const XmlElement& element);
absl::StatusOr<XmlElement> FromStanzaProto(const xmpp::stanza::v1::Stanza& stanza);

}  // namespace xc
