#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/async/task.h"
#include "core/jid/jid.h"
#include "core/xml/xml_element.h"
#include "proto/xmpp/presence/v1/presence.pb.h"
#include "services/roster/roster_store.h"
#include "services/roster/subscription_state_machine.h"

namespace xc {

struct AppliedEntryChange;  // roster_processor.cc

struct RosterLimits {
  size_t max_items = 2000;        // entries per roster (items and waiting requests)
  size_t max_name_bytes = 1023;   // item name
  size_t max_group_bytes = 1023;  // one group name
  size_t max_groups = 64;         // groups per item
  size_t max_pending = 500;       // stored subscribe requests per user
};

// What one input produced: effects for the presence router (in RFC order), and stanzas for the
// requesting session (the IQ result or error, and interim pushes of a versioned get).
struct RosterOutput {
  std::vector<xmpp::presence::v1::Effect> effects;
  std::vector<XmlElement> replies;
  // For metrics: subscription state changes as (verb or "remove", "outbound"/"inbound"), and
  // waiting requests stored and cleared (a contact's Pending In set or dropped).
  std::vector<std::pair<std::string, std::string>> transitions;
  int requests_stored = 0;
  int requests_cleared = 0;
};

// Rosters (RFC 6121 §2) and subscriptions (§3, Appendix A) over a RosterStore. A cross-user
// flow is a sequence of per-user atomic steps; re-running a flow after a failure is harmless
// because each step finds its state already moved. Client mistakes come back as error replies;
// a failed store returns a Status. Coroutines on the store's loop; arguments are used only
// while the call runs (await each call where it is made).
class RosterProcessor {
 public:
  RosterProcessor(RosterStore* store, RosterLimits limits = {}) : store_(store), limits_(limits) {}

  // `iq` is a jabber:iq:roster get or set with `from` already stamped as `session`.
  Task<absl::StatusOr<RosterOutput>> HandleRosterIq(const Jid& session, const XmlElement& iq);
  // The two entries a subscription stanza's flow starts from: the user's for the contact, and
  // the contact's for the user (with whether the contact has an account).
  struct SubscriptionReads {
    Jid user;     // the pair read (bare JIDs)
    Jid contact;
    absl::StatusOr<std::optional<std::string>> mine = absl::UnavailableError("not read");
    absl::StatusOr<OwnedItem> theirs = absl::UnavailableError("not read");
  };
  // `presence` is subscribe/subscribed/unsubscribe/unsubscribed with bare `from` and `to`.
  // `*reads`, when it holds the entries ReadPair() read for the stanza's pair, saves the first
  // round trip: the entries only seed the flow's compare-and-swaps, so when they changed
  // since, the steps read again. Reads of another pair are not used. The flow reads into
  // `*reads` when it has to and uses its entries up; it must stay valid until the call ends.
  Task<absl::StatusOr<RosterOutput>> HandleSubscription(const Jid& user, const XmlElement& presence,
                                                        std::optional<SubscriptionReads>* reads);
  Task<absl::StatusOr<RosterOutput>> HandleSubscription(const Jid& user,
                                                        const XmlElement& presence);
  // What HandleSubscription reads first for a stanza from reads->user to reads->contact (both
  // bare): the two entries, in one round trip, into `mine` and `theirs`. True when both reads
  // succeeded.
  Task<bool> ReadPair(SubscriptionReads* reads);
  // A subscription stanza from `sender` arriving for local user `receiver` (inbound processing
  // only: what a contact's server would hand us).
  Task<absl::StatusOr<RosterOutput>> HandleInbound(const Jid& receiver, const Jid& sender,
                                                   const XmlElement& presence);

 private:
  Task<absl::Status> HandleGet(const Jid& session, const XmlElement& iq, const XmlElement& query,
                               RosterOutput* out);
  Task<absl::Status> HandleSet(const Jid& session, const XmlElement& iq, const XmlElement& query,
                               RosterOutput* out);
  Task<absl::Status> HandleRemove(const Jid& session, const XmlElement& iq, const Jid& contact,
                                  RosterOutput* out);
  // Work an input causes after its own effects: whatever goes back to the originator
  // (automatic replies, the presence after a pre-approved answer, the unavailable after an
  // unsubscribe) takes effect as if it arrived later from the other server, so every push a
  // client sees carries the item's state at that moment.
  struct Deferred {
    bool is_reply = true;
    Jid receiver;
    Jid sender;
    SubscriptionVerb verb = SubscriptionVerb::kSubscribed;
    bool unavailable = false;  // for a presence snapshot (is_reply == false)
    int depth = 0;
  };
  struct Flow {
    RosterOutput* out;
    std::vector<Deferred> deferred;
  };
  // `read`: the receiver's entry for the sender when the caller already has it (its record is
  // moved from), else null.
  Task<absl::Status> ProcessInbound(const Jid& receiver, const Jid& sender, SubscriptionVerb verb,
                                    const XmlElement& stanza, int depth, Flow* flow,
                                    OwnedItem* read);
  Task<absl::Status> DrainDeferred(Flow* flow);
  // What an inbound step that changed `applied` produces (deliveries, pushes, deferred work).
  void InboundEffects(const Jid& receiver, const Jid& sender, SubscriptionVerb verb,
                      const XmlElement& stanza, int depth, Flow* flow,
                      const AppliedEntryChange& applied, const InboundOutcome& outcome);

  RosterStore* store_;
  RosterLimits limits_;
};

}  // namespace xc
