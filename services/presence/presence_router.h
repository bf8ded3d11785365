#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/base/clock.h"
#include "core/jid/jid.h"
#include "core/metrics/metrics.h"
#include "core/redis/redis_client.h"
#include "core/xml/xml_element.h"
#include "proto/xmpp/presence/v1/presence.pb.h"
#include "services/presence/gateway_deliverer.h"
#include "services/presence/session_directory.h"

namespace xc {

struct PresenceRouterOptions {
  // Answer a probe for a contact with no available resource with unavailable + <delay/>
  // (RFC 6121 §4.3.2, a SHOULD; decision A10 makes it configurable).
  bool probe_answers_last_unavailable = true;
  // Counts waiting subscription requests handed to a resource at its initial presence.
  metrics::Counter* waiting_requests_delivered = nullptr;
};

// Sessions, presence (RFC 6121 §4) and routing (§8). Reads rosters and waiting requests from
// the roster service's keys (never writes them). Every method is one input; deliveries it
// causes are batched per gateway and written in order. Thread-safe.
class PresenceRouter {
 public:
  PresenceRouter(SessionDirectory* directory, RedisClient* redis, GatewayDeliverer* deliverer,
                 Clock* clock, PresenceRouterOptions options = {});

  absl::StatusOr<std::string> BindSession(absl::string_view gateway_id, const Jid& bare,
                                          absl::string_view resource);
  absl::Status EndSession(const Jid& full);
  absl::Status SetInterested(const Jid& full);
  // Available, unavailable, probe or error presence from `session` (from already stamped).
  // Returns stanzas for the sender.
  absl::StatusOr<std::vector<XmlElement>> HandlePresence(const Jid& session,
                                                         const XmlElement& presence);
  // A message or IQ to another entity.
  absl::StatusOr<std::vector<XmlElement>> RouteStanza(const Jid& session, const XmlElement& stanza);
  absl::Status Dispatch(const xmpp::presence::v1::DispatchRequest& request);

 private:
  class Outbox;
  struct Contacts {
    std::vector<Jid> presence_to;  // contacts that receive our presence (from / both)
    std::vector<Jid> presence_of;  // contacts whose presence we receive (to / both)
  };

  absl::StatusOr<Contacts> ReadContacts(const Jid& bare);
  // A gateway that stayed unreachable through the deliverer's retries is treated as gone.
  void FenceGateway(const std::string& gateway_id);
  absl::Status BroadcastUnavailable(const Jid& full, const XmlElement* stanza, Outbox* out);
  // The one delivery primitive: `to`'s sessions that the audience selects (AUDIENCE_FULL_JID:
  // exactly to's resource); `xml_source()` serializes, once, only if someone receives it.
  template <typename XmlSource>
  absl::Status DeliverTo(const Jid& to, xmpp::presence::v1::Audience audience,
                         const XmlSource& xml_source, bool address_each, Outbox* out);
  absl::Status DeliverToBare(const Jid& bare, xmpp::presence::v1::Audience audience,
                             const XmlElement& stanza, bool address_each, Outbox* out);
  absl::Status DeliverSnapshot(const xmpp::presence::v1::PresenceSnapshot& snapshot, Outbox* out);
  absl::Status DeliverDirected(const Jid& target, const XmlElement& stanza, Outbox* out,
                               bool full_jid_only = false);
  absl::Status RememberDirected(const Jid& session, const Jid& target, bool available);
  absl::Status AnswerProbe(const Jid& prober, const std::string& prober_gateway,
                           const Jid& target, const XmlElement& probe, Outbox* out);

  SessionDirectory* directory_;
  RedisClient* redis_;
  GatewayDeliverer* deliverer_;
  Clock* clock_;
  PresenceRouterOptions options_;
};

}  // namespace xc
