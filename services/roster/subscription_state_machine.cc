#include "services/roster/subscription_state_machine.h"

namespace xc {
namespace {

bool HasPendingIn(const SubscriptionState& s) { return s.pending_in; }
bool HasFrom(const SubscriptionState& s) { return s.from; }
// Pre-approval can only exist where Pending In and From cannot: N, N+O, T.
bool CanPreApprove(const SubscriptionState& s) { return !s.from && !s.pending_in; }

}  // namespace

std::string StateName(const SubscriptionState& s) {
  std::string name;
  if (s.to && s.from) {
    name = "B";
  } else if (s.to) {
    name = s.pending_in ? "T+I" : "T";
  } else if (s.from) {
    name = s.pending_out ? "F+O" : "F";
  } else if (s.pending_out && s.pending_in) {
    name = "N+OI";
  } else if (s.pending_out) {
    name = "N+O";
  } else if (s.pending_in) {
    name = "N+I";
  } else {
    name = "N";
  }
  if (s.approved) name += "+A";
  return name;
}

bool ParseStateName(const std::string& name, SubscriptionState* out) {
  static const char* kNames[] = {"N", "N+O", "N+I", "N+OI", "T", "T+I", "F", "F+O", "B"};
  std::string base = name;
  bool approved = false;
  if (base.size() > 2 && base.compare(base.size() - 2, 2, "+A") == 0) {
    approved = true;
    base.resize(base.size() - 2);
  }
  for (const char* n : kNames) {
    if (base != n) continue;
    SubscriptionState s;
    s.to = base[0] == 'T' || base[0] == 'B';
    s.from = base[0] == 'F' || base[0] == 'B';
    s.pending_out = base == "N+O" || base == "N+OI" || base == "F+O";
    s.pending_in = base == "N+I" || base == "N+OI" || base == "T+I";
    s.approved = approved;
    *out = s;
    return true;
  }
  return false;
}

Subscription SubscriptionOf(const SubscriptionState& s) {
  if (s.to && s.from) return Subscription::kBoth;
  if (s.to) return Subscription::kTo;
  if (s.from) return Subscription::kFrom;
  return Subscription::kNone;
}

const char* VerbName(SubscriptionVerb verb) {
  switch (verb) {
    case SubscriptionVerb::kSubscribe:
      return "subscribe";
    case SubscriptionVerb::kSubscribed:
      return "subscribed";
    case SubscriptionVerb::kUnsubscribe:
      return "unsubscribe";
    case SubscriptionVerb::kUnsubscribed:
      return "unsubscribed";
  }
  return "";
}

OutboundOutcome OutboundTransition(const SubscriptionState& s, SubscriptionVerb verb) {
  OutboundOutcome o;
  o.next = s;
  switch (verb) {
    case SubscriptionVerb::kSubscribe:
      // A.2.1: always routed; N→N+O, N+I→N+OI, F→F+O. A repeat is routed and changes nothing.
      o.route = true;
      if (!s.to) o.next.pending_out = true;
      break;
    case SubscriptionVerb::kUnsubscribe:
      // A.2.2: always routed; drops `to` and Pending Out.
      o.route = true;
      o.next.to = false;
      o.next.pending_out = false;
      break;
    case SubscriptionVerb::kSubscribed:
      // A.2.3: an approval where there is a request; a pre-approval where there can be none;
      // nothing in F, F+O, B.
      if (HasPendingIn(s)) {
        o.route = true;
        o.next.pending_in = false;
        o.next.from = true;
        o.next.approved = false;  // A14: never kept once From is reached
        o.send_current_presence = true;
        o.delete_stored_request = true;
      } else if (CanPreApprove(s)) {
        o.next.approved = true;  // §3.4: never routed
      }
      break;
    case SubscriptionVerb::kUnsubscribed:
      // A.2.4: deny a request, or cancel the contact's subscription; otherwise only withdraw
      // a pre-approval (never routed).
      if (HasFrom(s)) {
        o.unavailable_first = true;  // §3.2.2: only when leaving From (A5)
        o.route = true;
        o.next.from = false;
      } else if (HasPendingIn(s)) {
        o.route = true;
        o.next.pending_in = false;
        o.delete_stored_request = true;
      }
      o.next.approved = false;
      break;
  }
  return o;
}

InboundOutcome InboundTransition(const SubscriptionState& s, SubscriptionVerb verb) {
  InboundOutcome o;
  o.next = s;
  switch (verb) {
    case SubscriptionVerb::kSubscribe:
      if (s.from) {
        // §3.1.3 (A2): already approved; answer for the user, never deliver.
        o.auto_reply = AutoReply::kSubscribed;
      } else if (s.pending_in) {
        // Duplicate while a request waits: not delivered again, nothing changes.
      } else if (s.approved) {
        // Pre-approved (A3): approve for the user, never deliver; A14 clears the flag.
        o.auto_reply = AutoReply::kSubscribed;
        o.next.from = true;
        o.next.approved = false;
        o.current_presence_to_sender = true;
      } else {
        o.deliver = true;
        o.store_request = true;
        o.next.pending_in = true;
      }
      break;
    case SubscriptionVerb::kUnsubscribe:
      // A.3.2 / §3.3.3: the contact withdraws a request or ends its subscription.
      if (s.from || s.pending_in) {
        o.deliver = true;
        o.auto_reply = AutoReply::kUnsubscribed;
        o.unavailable_to_sender = s.from;
        o.delete_stored_request = s.pending_in;
        o.next.from = false;
        o.next.pending_in = false;
      }
      break;
    case SubscriptionVerb::kSubscribed:
      // A.3.3 / §3.1.6: only an answer to our own request counts.
      if (s.pending_out) {
        o.deliver = true;
        o.next.pending_out = false;
        o.next.to = true;
      }
      break;
    case SubscriptionVerb::kUnsubscribed:
      // A.3.4 / §3.2.3: a denial (Pending Out) or a cancellation (To); A4: App. A wins.
      if (s.to || s.pending_out) {
        o.deliver = true;
        o.next.to = false;
        o.next.pending_out = false;
      }
      break;
  }
  return o;
}

}  // namespace xc
