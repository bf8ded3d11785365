#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/async/task.h"
#include "core/base/clock.h"
#include "core/jid/jid.h"
#include "core/metrics/metrics.h"
#include "core/redis/async_redis_client.h"
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

// Where an input's deliveries to sessions on the calling gateway go: back to that gateway in
// the answer (it writes them itself, in order, before its replies) instead of a Deliver call.
struct ReturnPath {
  std::string gateway_id;
  google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>* items = nullptr;
};

// Sessions, presence (RFC 6121 §4) and routing (§8). Reads rosters and waiting requests from
// the roster service's keys (never writes them). Every method is one input; deliveries it
// causes are batched per gateway and written in order, and the method ends once they are
// delivered. Coroutines on the router's loop; arguments must stay valid until the call ends
// (await it where it is made).
class PresenceRouter {
 public:
  PresenceRouter(SessionDirectory* directory, AsyncRedisClient* redis, GatewayDeliverer* deliverer,
                 Clock* clock, PresenceRouterOptions options = {});

  Task<absl::StatusOr<std::string>> BindSession(absl::string_view gateway_id, const Jid& bare,
                                                absl::string_view resource);
  // `back` (optional): see ReturnPath.
  Task<absl::Status> EndSession(const Jid& full, ReturnPath* back = nullptr);
  Task<absl::Status> SetInterested(const Jid& full);
  // Available, unavailable, probe or error presence from `session` (from already stamped).
  // Returns stanzas for the sender.
  Task<absl::StatusOr<std::vector<XmlElement>>> HandlePresence(const Jid& session,
                                                               const XmlElement& presence,
                                                               ReturnPath* back = nullptr);
  // A message or IQ to another entity.
  Task<absl::StatusOr<std::vector<XmlElement>>> RouteStanza(const Jid& session,
                                                            const XmlElement& stanza,
                                                            ReturnPath* back = nullptr);
  Task<absl::Status> Dispatch(const xmpp::presence::v1::DispatchRequest& request,
                              ReturnPath* back = nullptr);
  // Flows that take effect one after another (one session's subscription inputs, in stream
  // order): the sessions and presences they all read come in one round trip, then each flow
  // delivers (to `backs[i]`, which may be null, what is for its origin gateway) only after the
  // one before it has. A flow that fails leaves the later ones unrun (Unavailable), so that
  // running them again keeps the order. [i] is flows[i]'s outcome.
  Task<std::vector<absl::Status>> DispatchSequence(
      std::vector<const xmpp::presence::v1::DispatchRequest*> flows,
      std::vector<ReturnPath*> backs);

 private:
  class Outbox;
  struct Contacts {
    std::vector<Jid> presence_to;  // contacts that receive our presence (from / both)
    std::vector<Jid> presence_of;  // contacts whose presence we receive (to / both)
  };
  // Session lists read during one input, by bare JID: an input that delivers several times to
  // one user (a push, then a stanza, then presence) reads that user's sessions once.
  using SessionCache = absl::flat_hash_map<std::string, std::vector<SessionEntry>>;

  Task<absl::StatusOr<Contacts>> ReadContacts(const Jid& bare);
  Task<absl::StatusOr<const std::vector<SessionEntry>*>> Sessions(const Jid& bare,
                                                                  SessionCache* cache);
  // A gateway that stayed unreachable through the deliverer's retries is treated as gone.
  Task<bool> FenceGateway(std::string gateway_id);
  Task<absl::Status> BroadcastUnavailable(const Jid& full, const XmlElement* stanza, Outbox* out);
  // `xml` (with from, without to) to the available resources of every contact, addressed to
  // each contact's bare JID; the contacts' sessions are read in one round trip.
  Task<absl::Status> Broadcast(const std::vector<Jid>& contacts, const std::string& xml,
                               Outbox* out);
  // The one delivery primitive: `to`'s sessions that the audience selects (AUDIENCE_FULL_JID:
  // exactly to's resource). `xml` is written as is.
  Task<absl::Status> DeliverTo(const Jid& to, xmpp::presence::v1::Audience audience,
                               const std::string& xml, bool address_each, Outbox* out,
                               SessionCache* cache = nullptr);
  // `from_presences`: the stored presences of snapshot.from_bare (read by the caller).
  Task<absl::Status> DeliverSnapshot(const xmpp::presence::v1::PresenceSnapshot& snapshot,
                                     const PresenceView& from_presences, Outbox* out,
                                     SessionCache* cache);
  Task<absl::Status> DeliverDirected(const Jid& target, const XmlElement& stanza, Outbox* out,
                                     bool full_jid_only = false);
  Task<absl::Status> RememberDirected(const Jid& session, const Jid& target, bool available);
  // Probes of `targets` by `prober` answered from the targets' stored presence, to the prober
  // only: two round trips whatever the number of targets.
  Task<absl::Status> AnswerProbes(const Jid& prober, const std::string& prober_gateway,
                                  const std::vector<Jid>& targets, const XmlElement& probe,
                                  Outbox* out);

  SessionDirectory* directory_;
  AsyncRedisClient* redis_;
  GatewayDeliverer* deliverer_;
  Clock* clock_;
  PresenceRouterOptions options_;
};

}  // namespace xc
