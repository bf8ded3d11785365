#pragma once

#include <string>

#include "core/stanza/roster.h"

namespace xc {

// One side's view of a subscription (RFC 6121 Appendix A): the nine states are the
// combinations of to/from with the pending flags that Appendix A allows, plus the pre-approval
// flag, which only N, N+O and T can carry.
struct SubscriptionState {
  bool to = false;           // the user receives the contact's presence
  bool from = false;         // the contact receives the user's presence
  bool pending_out = false;  // the user asked; the contact has not answered (ask='subscribe')
  bool pending_in = false;   // the contact asked; the user has not answered
  bool approved = false;     // pre-approval (§3.4)

  friend bool operator==(const SubscriptionState& a, const SubscriptionState& b) {
    return a.to == b.to && a.from == b.from && a.pending_out == b.pending_out &&
           a.pending_in == b.pending_in && a.approved == b.approved;
  }
};

// "N", "N+O", "N+I", "N+OI", "T", "T+I", "F", "F+O", "B" (with "+A" when pre-approved).
std::string StateName(const SubscriptionState& s);
// The inverse of StateName, for tests and tools; returns false for an unknown name.
bool ParseStateName(const std::string& name, SubscriptionState* out);
Subscription SubscriptionOf(const SubscriptionState& s);  // none / to / from / both

enum class SubscriptionVerb { kSubscribe, kSubscribed, kUnsubscribe, kUnsubscribed };
const char* VerbName(SubscriptionVerb verb);

// The user's own stanza (Appendix A.2). Effects are listed in the order they happen.
struct OutboundOutcome {
  SubscriptionState next;
  bool unavailable_first = false;      // unavailable from the user's available resources to the
                                       // contact, before routing (cancelling `from`, §3.2.2)
  bool route = false;                  // route the stanza to the contact
  bool send_current_presence = false;  // after an approval: the user's presence to the contact
  bool delete_stored_request = false;  // the contact's waiting request is answered
};
OutboundOutcome OutboundTransition(const SubscriptionState& state, SubscriptionVerb verb);

enum class AutoReply { kNone, kSubscribed, kUnsubscribed };

// A contact's stanza arriving for the user (Appendix A.3).
struct InboundOutcome {
  SubscriptionState next;
  bool deliver = false;                 // to the user's resources (available for subscribe,
                                        // interested or available for the others)
  bool store_request = false;           // keep the subscribe until answered (§3.1.3)
  bool delete_stored_request = false;   // the waiting request is withdrawn
  AutoReply auto_reply = AutoReply::kNone;
  bool unavailable_to_sender = false;   // the user's resources' unavailable to the contact
  bool current_presence_to_sender = false;  // pre-approved: the user's presence to the contact
};
InboundOutcome InboundTransition(const SubscriptionState& state, SubscriptionVerb verb);

}  // namespace xc
