#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"
#include "core/base/log.h"
#include "core/metrics/metrics.h"
#include "core/stanza/stanza.h"
#include "core/store/account_store.h"
#include "core/xml/xml_stream_parser.h"
#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "proto/xmpp/roster/v1/roster.grpc.pb.h"
#include "core/event/event_loop.h"
#include "core/grpc/call_batcher.h"
#include "services/gateway/work_pool.h"

namespace xc {

class ClientSession;

struct GatewayConfig {
  std::string id;
  std::vector<std::string> domains;  // served XMPP domains (canonical)
  bool allow_plaintext = false;      // SASL without TLS (loopback development only)
  bool tls_required = true;          // with TLS configured: nothing but STARTTLS before it
  bool channel_binding = true;       // offer SCRAM-*-PLUS (tls-unique, tls-exporter) inside TLS
  XmlLimits limits;                  // after authentication
  size_t pre_auth_max_stanza_bytes = 16 * 1024;
  int max_auth_attempts = 3;
  int max_bind_attempts = 5;
  size_t max_write_buffer_bytes = 4 * 1024 * 1024;  // a slower reader is disconnected
  // Per session, waiting for their turn. Reading stops while a session has a backlog
  // (ClientSession::kPauseReadingAt), so only what one read of 16 KB holds can pile up on top:
  // this is a guard against a broken invariant, far above it.
  size_t max_queued_stanzas = 4096;
  absl::Duration backend_timeout = absl::Seconds(5);
  int max_connections_per_ip = 1000;
  absl::Duration pre_auth_timeout = absl::Seconds(30);  // until authenticated and bound
};

// Live sessions by full JID, for the Deliver endpoint. Thread-safe.
class SessionRegistry {
 public:
  void Add(const std::string& full_jid, std::weak_ptr<ClientSession> session);
  void Remove(const std::string& full_jid, const ClientSession* session);
  std::shared_ptr<ClientSession> Find(const std::string& full_jid);
  std::vector<std::shared_ptr<ClientSession>> All();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<ClientSession>> sessions_;
};

// Stanza counters by kind and type, resolved once: counting a stanza costs an index, not a
// label lookup.
class StanzaCounters {
 public:
  StanzaCounters(metrics::Registry* r, const std::string& name, const std::string& help) {
    metrics::Family<metrics::Counter>& family = r->AddCounter(name, help);
    for (StanzaKind kind : {StanzaKind::kUnknown, StanzaKind::kMessage, StanzaKind::kPresence,
                            StanzaKind::kIq}) {
      const std::vector<const char*>& types = StanzaTypeNames(kind);
      for (size_t t = 0; t < types.size(); ++t) {
        table_[static_cast<int>(kind)][t] =
            &family.Add({{"kind", StanzaKindName(kind)}, {"type", types[t]}});
      }
    }
  }
  void Count(StanzaKind kind, absl::string_view type) {
    table_[static_cast<int>(kind)][StanzaTypeIndex(kind, type)]->Increment();
  }

 private:
  metrics::Counter* table_[4][kMaxStanzaTypes] = {};
};

// What every session of one gateway shares. Owned by GatewayServer; outlives its sessions.
// The gateway's metrics (no JID, resource or address ever becomes a label).
struct GatewayMetrics {
  explicit GatewayMetrics(metrics::Registry* r)
      : sessions(&r->AddGauge("xc_gateway_sessions", "Bound client sessions.").Add({})),
        connections(&r->AddGauge("xc_gateway_connections", "Open client connections.").Add({})),
        logins(&r->AddCounter("xc_gateway_logins_total", "SASL outcomes, by result.")),
        stanzas_in(r, "xc_gateway_stanzas_in_total", "Stanzas from clients, by kind and type."),
        stanzas_out(r, "xc_gateway_stanzas_out_total",
                    "Stanzas routed to clients through Deliver, by kind and type."),
        stream_errors(&r->AddCounter("xc_gateway_stream_errors_total",
                                     "Streams closed with a stream error, by condition.")),
        backend_seconds(&r->AddHistogram("xc_gateway_backend_seconds",
                                         "Gateway to service hop, by method.")) {}
  // The hop histogram of one method, resolved once per method name.
  metrics::Histogram* Backend(const char* method) {
    std::lock_guard<std::mutex> lock(backend_mu);
    metrics::Histogram*& h = backend_by_method[method];
    if (h == nullptr) h = &backend_seconds->Add({{"method", method}});
    return h;
  }
  metrics::Gauge* sessions;
  metrics::Gauge* connections;
  metrics::Family<metrics::Counter>* logins;
  StanzaCounters stanzas_in;
  StanzaCounters stanzas_out;
  metrics::Family<metrics::Counter>* stream_errors;
  metrics::Family<metrics::Histogram>* backend_seconds;
  std::mutex backend_mu;
  std::unordered_map<const char*, metrics::Histogram*> backend_by_method;  // literals only
};

struct GatewayContext {
  GatewayMetrics* metrics = nullptr;
  GatewayConfig config;
  // OpenSSL server context (nullptr: no TLS on this listener) and the SASL library context.
  // Opaque here so that no session header pulls in OpenSSL or gsasl.
  // Swapped by a certificate reload (SIGHUP): new streams take the new context, streams already
  // in TLS keep theirs. Replaced contexts are never freed (a reload is rare and one is small),
  // so a session that read the pointer just before a swap can still use it.
  std::atomic<void*> tls_context{nullptr};  // SSL_CTX*
  void* sasl_context = nullptr;  // Gsasl*
  EventLoop* loop = nullptr;  // sessions, listeners and outgoing calls run on it
  WorkPool* work = nullptr;
  AccountStore* accounts = nullptr;
  // What the sessions send the services, batched per loop turn.
  CallBatcher<xmpp::roster::v1::RosterBatchRequest, xmpp::roster::v1::RosterBatchResponse>*
      roster = nullptr;
  CallBatcher<xmpp::presence::v1::RouterBatchRequest, xmpp::presence::v1::RouterBatchResponse>*
      router = nullptr;
  SessionRegistry registry;
  // Set while a router has fenced this gateway (see GatewayRegistration): no new binds.
  std::atomic<bool> fenced{false};

  bool ServesDomain(absl::string_view domain) const;
};

}  // namespace xc
