#include "core/grpc/grpc_util.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "core/base/log.h"

#include "core/stanza/stanza.h"
#include "core/xml/xml_fragment.h"
#include "core/xml/xml_serializer.h"

ABSL_FLAG(std::string, grpc_tls_ca, "",
          "CA certificate (PEM) for service-to-service gRPC; with the two below enables mTLS");
ABSL_FLAG(std::string, grpc_tls_cert, "", "this service's certificate chain (PEM) for gRPC");
ABSL_FLAG(std::string, grpc_tls_key, "", "this service's private key (PEM) for gRPC");
ABSL_FLAG(bool, grpc_streams, true,
          "carry batch calls to other services as frames on long-lived gRPC streams (false: "
          "one unary call each; a server without the stream methods gets unary calls anyway)");
ABSL_FLAG(std::string, grpc_tls_server_name, "xc-internal",
          "name every service certificate carries (clients check it instead of the address)");

namespace xc {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

namespace {

struct ServiceTls {
  bool enabled = false;
  std::string ca, cert, key, server_name;
};

std::string ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) {
    XC_LOG(FATAL) << "cannot read " << flag << " file " << path;
  }
  if (text.str().find("-----BEGIN") == std::string::npos) {
    XC_LOG(FATAL) << flag << " " << path << " holds no PEM data";
  }
  return text.str();
}

const ServiceTls& Tls() {
  static const ServiceTls* tls = [] {
    auto* t = new ServiceTls;
    const std::string ca = absl::GetFlag(FLAGS_grpc_tls_ca);
    const std::string cert = absl::GetFlag(FLAGS_grpc_tls_cert);
    const std::string key = absl::GetFlag(FLAGS_grpc_tls_key);
    if (ca.empty() && cert.empty() && key.empty()) return t;
    XC_CHECK(!ca.empty() && !cert.empty() && !key.empty())
        << "--grpc_tls_ca, --grpc_tls_cert and --grpc_tls_key go together";
    t->enabled = true;
    t->ca = ReadPem(ca, "--grpc_tls_ca");
    t->cert = ReadPem(cert, "--grpc_tls_cert");
    t->key = ReadPem(key, "--grpc_tls_key");
    t->server_name = absl::GetFlag(FLAGS_grpc_tls_server_name);
    return t;
  }();
  return *tls;
}

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> ServiceChannelCredentials() {
  const ServiceTls& tls = Tls();
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca;
  options.pem_cert_chain = tls.cert;
  options.pem_private_key = tls.key;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> ServiceServerCredentials() {
  const ServiceTls& tls = Tls();
  if (!tls.enabled) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca;
  options.pem_key_cert_pairs.push_back({tls.key, tls.cert});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::Channel> NewServiceChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Calls between services are many and small: no bandwidth-delay probing pings. (The minimal
  // filter stack was tried too: it drops the filters mutual TLS needs.)
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetLoadBalancingPolicyName("round_robin");
  if (Tls().enabled) args.SetSslTargetNameOverride(Tls().server_name);
  return grpc::CreateCustomChannel(target, ServiceChannelCredentials(), args);
}

bool UseGrpcStreams() { return absl::GetFlag(FLAGS_grpc_streams); }

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
