#include "services/roster/roster_processor.h"

#include <functional>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/base/random.h"
#include "core/stanza/errors.h"
#include "core/stanza/namespaces.h"
#include "core/stanza/presence.h"
#include "core/stanza/roster.h"
#include "core/stanza/stanza.h"
#include "core/xml/xml_serializer.h"
#include "proto/xmpp/store/v1/records.pb.h"

namespace xc {

struct AppliedEntryChange {
  std::optional<xmpp::store::v1::RosterItemRecord> before;
  std::optional<xmpp::store::v1::RosterItemRecord> after;
  bool pushed = false;
  int64_t version = 0;
};

namespace {

using xmpp::presence::v1::Audience;
using xmpp::presence::v1::Effect;
using xmpp::store::v1::RosterItemRecord;

constexpr int kMaxCasAttempts = 16;

SubscriptionState StateOf(const RosterItemRecord& r) {
  SubscriptionState s;
  s.to = r.to();
  s.from = r.from();
  s.pending_out = r.pending_out();
  s.pending_in = r.pending_in();
  s.approved = r.approved();
  return s;
}

void ApplyState(const SubscriptionState& s, RosterItemRecord* r) {
  r->set_to(s.to);
  r->set_from(s.from);
  r->set_pending_out(s.pending_out);
  r->set_pending_in(s.pending_in);
  r->set_approved(s.approved);
}

// What a client can see of an entry; a push is due exactly when this changes (A.1, A7).
std::string VisibleKey(const std::optional<RosterItemRecord>& r) {
  if (!r || !r->in_roster()) return "";
  std::string key = absl::StrCat("1|", r->name(), "|", r->to(), r->from(), r->pending_out(),
                                 r->approved());
  for (const std::string& g : r->groups()) absl::StrAppend(&key, "|", g);
  return key;
}

// An entry that says nothing any more is deleted rather than stored.
bool IsEmpty(const RosterItemRecord& r) {
  return !r.in_roster() && !r.to() && !r.from() && !r.pending_out() && !r.pending_in() &&
         !r.approved();
}

RosterItem ToItem(const std::string& contact, const RosterItemRecord& r) {
  RosterItem item;
  absl::StatusOr<Jid> jid = Jid::Parse(contact);
  if (jid.ok()) item.jid = *jid;
  item.name = r.name();
  item.subscription = SubscriptionOf(StateOf(r));
  item.ask = r.pending_out();
  item.approved = r.approved();
  item.groups.assign(r.groups().begin(), r.groups().end());
  return item;
}

XmlElement MakePushIq(const std::string& contact, const RosterItemRecord* record,
                      int64_t version) {
  XmlElement iq("iq", std::string(kNsClient));
  iq.SetAttribute("type", "set");
  iq.SetAttribute("id", absl::StrCat("push", RandomId(10)));
  XmlElement& query = iq.AddChild("query", std::string(kNsRoster));
  query.SetAttribute("ver", std::to_string(version));
  if (record != nullptr) {
    query.AddChild(SerializeRosterItem(ToItem(contact, *record)));
  } else {
    XmlElement& item = query.AddChild("item", std::string(kNsRoster));
    item.SetAttribute("jid", contact);
    item.SetAttribute("subscription", "remove");
  }
  return iq;
}

void SetStanza(const XmlElement& xml, xmpp::stanza::v1::Stanza* s) {
  StanzaKind kind = KindOf(xml);
  s->set_kind(kind == StanzaKind::kPresence ? xmpp::stanza::v1::KIND_PRESENCE
              : kind == StanzaKind::kIq     ? xmpp::stanza::v1::KIND_IQ
                                            : xmpp::stanza::v1::KIND_MESSAGE);
  s->set_type(xml.Attribute("type"));
  s->set_from(xml.Attribute("from"));
  s->set_to(xml.Attribute("to"));
  s->set_id(xml.Attribute("id"));
  s->set_xml(SerializeXml(xml));
}

void AddDelivery(const std::string& to, Audience audience, const XmlElement& xml,
                 bool address_each, RosterOutput* out) {
  Effect& e = out->effects.emplace_back();
  xmpp::presence::v1::Delivery* d = e.mutable_delivery();
  d->set_to(to);
  d->set_audience(audience);
  d->set_address_each_recipient(address_each);
  SetStanza(xml, d->mutable_stanza());
}

void AddPush(const Jid& user, const std::string& contact, const RosterItemRecord* record,
             int64_t version, RosterOutput* out) {
  AddDelivery(user.BareString(), xmpp::presence::v1::AUDIENCE_INTERESTED,
              MakePushIq(contact, record, version), /*address_each=*/true, out);
}

void AddSnapshot(const Jid& from, const Jid& to, bool unavailable, RosterOutput* out) {
  Effect& e = out->effects.emplace_back();
  xmpp::presence::v1::PresenceSnapshot* p = e.mutable_presence_snapshot();
  p->set_from_bare(from.BareString());
  p->set_to_bare(to.BareString());
  p->set_unavailable(unavailable);
}

XmlElement SubscriptionStanza(const Jid& from, const Jid& to, SubscriptionVerb verb) {
  XmlElement p("presence", std::string(kNsClient));
  p.SetAttribute("from", from.BareString());
  p.SetAttribute("to", to.BareString());
  p.SetAttribute("type", VerbName(verb));
  p.SetAttribute("id", RandomId(12));
  return p;
}

std::optional<SubscriptionVerb> VerbOf(absl::string_view type) {
  if (type == "subscribe") return SubscriptionVerb::kSubscribe;
  if (type == "subscribed") return SubscriptionVerb::kSubscribed;
  if (type == "unsubscribe") return SubscriptionVerb::kUnsubscribe;
  if (type == "unsubscribed") return SubscriptionVerb::kUnsubscribed;
  return std::nullopt;
}

// One planned change of one entry, decided from what is stored now.
struct Change {
  std::optional<RosterItemRecord> next;
  PendingOp pending = PendingOp::kKeep;
  std::string pending_xml;
  bool force_version = false;  // a roster set always yields a push
};

using Applied = AppliedEntryChange;

using Decide = std::function<absl::StatusOr<Change>(const std::optional<RosterItemRecord>&)>;

// One entry's change as decided from `raw` (what is stored now): the write that makes it, and
// whether there is anything to write.
struct Planned {
  Applied applied;
  ItemWrite write;
  bool unchanged = false;
};

absl::StatusOr<Planned> Plan(std::optional<std::string> raw, size_t max_pending,
                             const Decide& decide) {
  std::optional<RosterItemRecord> before;
  if (raw.has_value()) {
    before.emplace();
    if (!before->ParseFromString(*raw)) return absl::DataLossError("unreadable roster entry");
  }
  absl::StatusOr<Change> change = decide(before);
  if (!change.ok()) return change.status();
  if (change->next && IsEmpty(*change->next)) change->next.reset();
  Planned p;
  p.applied.before = before;
  p.applied.after = change->next;
  p.applied.pushed = change->force_version || VisibleKey(before) != VisibleKey(change->next);
  p.write.expected = std::move(raw);
  if (change->next) p.write.next = change->next->SerializeAsString();
  p.write.bump_version = p.applied.pushed;
  p.write.pending = change->pending;
  p.write.pending_xml = change->pending_xml;
  p.write.max_pending = max_pending;
  p.unchanged = p.write.expected == p.write.next && change->pending == PendingOp::kKeep &&
                !p.applied.pushed;
  return p;
}

// Read, decide, compare-and-swap; on a lost race decide again from the fresh value. `first`,
// when not null, is the entry as the caller has just read it (saves the first read; it is
// moved from). The change made goes to `*applied`.
//
// The coroutines of a subscription's flow keep their results in the caller's objects (out
// parameters) rather than returning them: every local, parameter and awaited temporary of a
// coroutine lives in its heap frame for the whole call, and a burst holds hundreds of flows in
// flight at once (docs/performance.md, optimisation 23).
Task<absl::Status> Mutate(RosterStore* store, const Jid& user, const std::string& contact,
                          size_t max_pending, Decide decide, std::optional<std::string>* first,
                          Applied* applied) {
  const std::string owner = user.BareString();
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    std::optional<std::string> raw;
    if (attempt == 0 && first != nullptr) {
      raw = std::move(*first);
    } else {
      absl::StatusOr<std::optional<std::string>> read = co_await store->GetItem(owner, contact);
      if (!read.ok()) co_return read.status();
      raw = std::move(*read);
    }
    absl::StatusOr<Planned> planned = Plan(std::move(raw), max_pending, decide);
    if (!planned.ok()) co_return planned.status();
    if (planned->unchanged) {
      *applied = std::move(planned->applied);
      co_return absl::OkStatus();
    }
    absl::StatusOr<int64_t> version =
        co_await store->WriteItem(owner, contact, std::move(planned->write));
    if (version.ok()) {
      *applied = std::move(planned->applied);
      applied->version = *version;
      co_return absl::OkStatus();
    }
    if (version.status().code() != absl::StatusCode::kAborted) co_return version.status();
  }
  co_return absl::UnavailableError("roster entry too contended");
}

// The decisions of a subscription stanza's two steps, each from the entry as stored: the
// sender's (outbound, §3 and A.2/A.4) and the receiver's (inbound, A.3/A.5). `outcome` receives
// the transition.
Decide OutboundDecision(SubscriptionVerb verb, OutboundOutcome* outcome) {
  return [verb, outcome](const std::optional<RosterItemRecord>& before) -> absl::StatusOr<Change> {
    RosterItemRecord rec = before.value_or(RosterItemRecord());
    const SubscriptionState state = StateOf(rec);
    *outcome = OutboundTransition(state, verb);
    ApplyState(outcome->next, &rec);
    // A subscribe or an approval makes the contact a roster item (§3.1.2, §3.1.5, §3.4).
    bool creates =
        (verb == SubscriptionVerb::kSubscribe || verb == SubscriptionVerb::kSubscribed) &&
        !(outcome->next == state);
    if (creates) rec.set_in_roster(true);
    Change change;
    change.next = rec;
    if (outcome->delete_stored_request) change.pending = PendingOp::kDelete;
    return change;
  };
}

Decide InboundDecision(SubscriptionVerb verb, const std::string& stanza_xml,
                       InboundOutcome* outcome) {
  return [verb, &stanza_xml,
          outcome](const std::optional<RosterItemRecord>& before) -> absl::StatusOr<Change> {
    RosterItemRecord rec = before.value_or(RosterItemRecord());
    *outcome = InboundTransition(StateOf(rec), verb);
    ApplyState(outcome->next, &rec);
    Change change;
    change.next = rec;
    if (outcome->store_request) {
      change.pending = PendingOp::kSet;
      change.pending_xml = stanza_xml;
    } else if (outcome->delete_stored_request) {
      change.pending = PendingOp::kDelete;
    }
    return change;
  };
}

// A subscription stanza's outbound and inbound steps as one write (RosterStore::WritePair),
// decided from the two entries read: `written` when taken. Not taken, with nothing written,
// when the outbound step does not go on to the contact (the entries read are still good), or
// when the write found an entry changed or the contact's stored requests full (`stale`: the
// steps then decide again, one after the other, from fresh reads, and answer a full contact
// as they do). `outbound` and `inbound` are the changes written: meaningful only when `written`.
struct BothSteps {
  bool written = false;
  bool stale = false;
  OutboundOutcome outcome;
  Applied outbound;
  InboundOutcome inbound_outcome;
  Applied inbound;
};

// What the pair write changes: each side's write, nullopt where that entry stays as it is.
struct PairWrite {
  std::optional<ItemWrite> mine;
  std::optional<ItemWrite> theirs;
};

// Both steps decided from the two entries read (outcomes and changes into `both`, the writes
// into `write`); nothing to write when the outbound step does not go on to the contact.
absl::Status PlanBothSteps(size_t max_pending, SubscriptionVerb verb, const XmlElement& stanza,
                           const std::optional<std::string>& mine, const OwnedItem& theirs,
                           BothSteps* both, PairWrite* write) {
  absl::StatusOr<Planned> outbound =
      Plan(mine, max_pending, OutboundDecision(verb, &both->outcome));
  if (!outbound.ok()) return outbound.status();
  if (!both->outcome.route) return absl::OkStatus();
  const std::string stanza_xml = SerializeXml(stanza);
  absl::StatusOr<Planned> inbound =
      Plan(theirs.record, max_pending, InboundDecision(verb, stanza_xml, &both->inbound_outcome));
  if (!inbound.ok()) return inbound.status();
  if (!outbound->unchanged) write->mine = std::move(outbound->write);
  if (!inbound->unchanged) write->theirs = std::move(inbound->write);
  both->outbound = std::move(outbound->applied);
  both->inbound = std::move(inbound->applied);
  return absl::OkStatus();
}

// `reads` holds both entries (both read without error).
Task<absl::Status> WriteBothSteps(RosterStore* store, size_t max_pending, SubscriptionVerb verb,
                                  const XmlElement& stanza,
                                  const RosterProcessor::SubscriptionReads& reads,
                                  BothSteps* both) {
  PairWrite write;
  absl::Status planned =
      PlanBothSteps(max_pending, verb, stanza, *reads.mine, *reads.theirs, both, &write);
  if (!planned.ok() || !both->outcome.route) co_return planned;
  absl::StatusOr<std::pair<int64_t, int64_t>> versions =
      co_await store->WritePair(reads.user.BareString(), reads.contact.BareString(),
                                std::move(write.mine), std::move(write.theirs));
  if (absl::IsAborted(versions.status()) || absl::IsResourceExhausted(versions.status())) {
    both->stale = true;
    co_return absl::OkStatus();
  }
  if (!versions.ok()) co_return versions.status();
  both->written = true;
  both->outbound.version = versions->first;
  both->inbound.version = versions->second;
  co_return absl::OkStatus();
}

// Metrics of one applied step: a state change, and a waiting request stored or cleared (the
// stored request and the Pending In flag change together).
void Count(const Applied& a, absl::string_view verb, absl::string_view direction,
           RosterOutput* out) {
  const RosterItemRecord none;
  const RosterItemRecord& before = a.before ? *a.before : none;
  const RosterItemRecord& after = a.after ? *a.after : none;
  if (!(StateOf(before) == StateOf(after))) {
    out->transitions.emplace_back(std::string(verb), std::string(direction));
  }
  if (!before.pending_in() && after.pending_in()) ++out->requests_stored;
  if (before.pending_in() && !after.pending_in()) ++out->requests_cleared;
}

XmlElement ErrorReply(const XmlElement& request, const absl::Status& status) {
  return MakeErrorReply(request, StanzaErrorConditionOf(status), status.message());
}

}  // namespace

Task<absl::StatusOr<RosterOutput>> RosterProcessor::HandleRosterIq(const Jid& session,
                                                                   const XmlElement& iq) {
  RosterOutput out;
  const XmlElement* query = iq.FindChild("query", kNsRoster);
  std::optional<IqType> type = ParseIqType(iq.Attribute("type"));
  absl::Status status;
  if (query == nullptr || !type || (*type != IqType::kGet && *type != IqType::kSet)) {
    status = StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "not a roster get or set");
  } else if (std::string to = iq.Attribute("to"); !to.empty() && to != session.BareString()) {
    // §2.1.5: only the owner reads or writes a roster.
    absl::StatusOr<Jid> to_jid = Jid::Parse(to);
    if (!to_jid.ok() || to_jid->ToString() != session.BareString()) {
      status = StanzaErrorStatus(StanzaErrorCondition::kForbidden, "not your roster");
    }
  }
  if (status.ok()) {
    if (*type == IqType::kGet) {
      status = co_await HandleGet(session, iq, *query, &out);
    } else {
      status = co_await HandleSet(session, iq, *query, &out);
    }
  }
  if (!status.ok()) {
    if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
        absl::IsInternal(status) || absl::IsDataLoss(status)) {
      co_return status;  // infrastructure: the caller retries or answers internal-server-error
    }
    out.effects.clear();
    out.replies.push_back(ErrorReply(iq, status));
  }
  co_return out;
}

Task<absl::Status> RosterProcessor::HandleGet(const Jid& session, const XmlElement& iq,
                                              const XmlElement& query, RosterOutput* out) {
  if (query.ElementCount() != 0) {
    co_return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "roster get with items (A17)");
  }
  const std::string owner = session.BareString();
  XmlElement result = MakeIqResult(iq);
  result.RemoveAttribute("from");
  // §2.6: a known older version is answered with an empty result and interim pushes, unless
  // the full roster is smaller.
  int64_t client_ver = -1;
  if (const std::string* ver = query.FindAttribute("ver");
      ver != nullptr && !ver->empty() && absl::SimpleAtoi(*ver, &client_ver) && client_ver >= 0) {
    absl::StatusOr<std::pair<int64_t, std::vector<RosterChange>>> changes =
        co_await store_->ChangesSince(owner, client_ver);
    if (!changes.ok()) co_return changes.status();
    const auto& [current, list] = *changes;
    if (client_ver <= current) {
      absl::StatusOr<int64_t> entries = co_await store_->EntryCount(owner);
      if (!entries.ok()) co_return entries.status();
      if (list.size() <= static_cast<size_t>(*entries) || list.empty()) {
        out->replies.push_back(result);
        for (const RosterChange& c : list) {
          RosterItemRecord record;
          bool visible = c.record && record.ParseFromString(*c.record) && record.in_roster();
          XmlElement push = MakePushIq(c.contact, visible ? &record : nullptr, c.version);
          push.SetAttribute("to", session.ToString());
          out->replies.push_back(std::move(push));
        }
        co_return absl::OkStatus();
      }
    }
  }
  absl::StatusOr<StoredRoster> roster = co_await store_->ReadRoster(owner);
  if (!roster.ok()) co_return roster.status();
  RosterQuery reply;
  reply.ver = std::to_string(roster->version);
  for (const auto& [contact, raw] : roster->items) {
    RosterItemRecord record;
    if (!record.ParseFromString(raw) || !record.in_roster()) continue;  // pending-in only (A.1)
    reply.items.push_back(ToItem(contact, record));
  }
  result.AddChild(SerializeRosterQuery(reply));
  out->replies.push_back(std::move(result));
  co_return absl::OkStatus();
}

Task<absl::Status> RosterProcessor::HandleSet(const Jid& session, const XmlElement& iq,
                                              const XmlElement& query, RosterOutput* out) {
  if (query.ElementCount() != 1 || query.Children("item", kNsRoster).size() != 1) {
    co_return StanzaErrorStatus(StanzaErrorCondition::kBadRequest,
                                "a roster set has exactly one item");
  }
  absl::StatusOr<RosterQuery> parsed = ParseRosterQuery(query);
  if (!parsed.ok()) co_return parsed.status();
  RosterItem item = parsed->items[0];
  if (item.jid.is_full()) item.jid = item.jid.Bare();  // A16
  if (item.jid.BareString() == session.BareString()) {
    co_return StanzaErrorStatus(StanzaErrorCondition::kNotAllowed, "own JID in roster (A15)");
  }
  if (item.subscription == Subscription::kRemove) {
    co_return co_await HandleRemove(session, iq, item.jid, out);
  }
  // §2.1.2: ask, approved and any subscription but remove are ignored.
  std::set<std::string> seen;
  for (const std::string& g : item.groups) {
    if (g.empty()) co_return StanzaErrorStatus(StanzaErrorCondition::kNotAcceptable, "empty group");
    if (g.size() > limits_.max_group_bytes) {
      co_return StanzaErrorStatus(StanzaErrorCondition::kNotAcceptable, "group name too long");
    }
    if (!seen.insert(g).second) {
      co_return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "duplicate group");
    }
  }
  if (item.groups.size() > limits_.max_groups) {
    co_return StanzaErrorStatus(StanzaErrorCondition::kNotAcceptable, "too many groups");
  }
  if (item.name.size() > limits_.max_name_bytes) {
    co_return StanzaErrorStatus(StanzaErrorCondition::kNotAcceptable, "name too long");
  }
  const std::string contact = item.jid.BareString();
  // The size limit applies when the set adds an item (decided below, from the stored entry).
  absl::StatusOr<int64_t> entries = co_await store_->EntryCount(session.BareString());
  if (!entries.ok()) co_return entries.status();
  Applied applied;
  absl::Status mutated = co_await Mutate(
      store_, session.Bare(), contact, limits_.max_pending,
      [&](const std::optional<RosterItemRecord>& before) -> absl::StatusOr<Change> {
        if ((!before || !before->in_roster()) &&
            static_cast<size_t>(*entries) >= limits_.max_items) {
          return StanzaErrorStatus(StanzaErrorCondition::kNotAllowed, "roster is full");
        }
        Change change;
        change.next = before.value_or(RosterItemRecord());
        change.next->set_in_roster(true);
        change.next->set_name(item.name);
        change.next->clear_groups();
        for (const std::string& g : item.groups) change.next->add_groups(g);
        change.force_version = true;
        return change;
      },
      nullptr, &applied);
  if (!mutated.ok()) co_return mutated;
  XmlElement result = MakeIqResult(iq);
  result.RemoveAttribute("from");
  out->replies.push_back(std::move(result));
  AddPush(session, contact, &*applied.after, applied.version, out);
  co_return absl::OkStatus();
}

Task<absl::Status> RosterProcessor::HandleRemove(const Jid& session, const XmlElement& iq,
                                                 const Jid& contact_jid, RosterOutput* out) {
  const Jid user = session.Bare();
  const std::string contact = contact_jid.BareString();
  Applied applied;
  absl::Status mutated = co_await Mutate(
      store_, user, contact, limits_.max_pending,
      [&](const std::optional<RosterItemRecord>& before) -> absl::StatusOr<Change> {
        if (!before || !before->in_roster()) {
          return StanzaErrorStatus(StanzaErrorCondition::kItemNotFound, "no such roster item");
        }
        Change change;  // next = nothing: the entry goes, with any waiting request
        change.pending = before->pending_in() ? PendingOp::kDelete : PendingOp::kKeep;
        return change;
      },
      nullptr, &applied);
  if (!mutated.ok()) co_return mutated;
  Count(applied, "remove", "outbound", out);
  XmlElement result = MakeIqResult(iq);
  result.RemoveAttribute("from");
  out->replies.push_back(std::move(result));
  AddPush(session, contact, nullptr, applied.version, out);
  // §2.5.2 and A6: cancel in both directions from the state before the removal; these bypass
  // the outbound table (from N it would suppress `unsubscribed`).
  const SubscriptionState was = StateOf(*applied.before);
  Flow flow{out, {}};
  if (was.to || was.pending_out) {
    const XmlElement stanza =
        SubscriptionStanza(user, contact_jid, SubscriptionVerb::kUnsubscribe);
    absl::Status s = co_await ProcessInbound(contact_jid, user, SubscriptionVerb::kUnsubscribe,
                                             stanza, 0, &flow, nullptr);
    if (!s.ok()) co_return s;
  }
  if (was.from || was.pending_in) {
    if (was.from) AddSnapshot(user, contact_jid, /*unavailable=*/true, out);
    const XmlElement stanza =
        SubscriptionStanza(user, contact_jid, SubscriptionVerb::kUnsubscribed);
    absl::Status s = co_await ProcessInbound(contact_jid, user, SubscriptionVerb::kUnsubscribed,
                                             stanza, 0, &flow, nullptr);
    if (!s.ok()) co_return s;
  }
  co_return co_await DrainDeferred(&flow);
}

Task<bool> RosterProcessor::ReadPair(SubscriptionReads* reads) {
  auto [mine, theirs] = co_await WhenBoth(
      store_->GetItem(reads->user.BareString(), reads->contact.BareString()),
      store_->GetOwnedItem(reads->contact.BareString(), reads->user.BareString()));
  reads->mine = std::move(mine);
  reads->theirs = std::move(theirs);
  co_return reads->mine.ok() && reads->theirs.ok();
}

Task<absl::StatusOr<RosterOutput>> RosterProcessor::HandleSubscription(const Jid& user,
                                                                       const XmlElement& presence) {
  std::optional<SubscriptionReads> reads;
  co_return co_await HandleSubscription(user, presence, &reads);
}

Task<absl::StatusOr<RosterOutput>> RosterProcessor::HandleSubscription(
    const Jid& user_jid, const XmlElement& presence, std::optional<SubscriptionReads>* reads) {
  RosterOutput out;
  std::optional<SubscriptionVerb> verb = VerbOf(presence.Attribute("type"));
  absl::StatusOr<Jid> contact_jid = Jid::Parse(presence.Attribute("to"));
  if (!verb) co_return out;
  if (!contact_jid.ok()) {
    out.replies.push_back(MakeErrorReply(presence, StanzaErrorCondition::kJidMalformed));
    co_return out;
  }
  const Jid user = user_jid.Bare();
  const Jid contact = contact_jid->Bare();
  if (contact == user || contact.local().empty()) co_return out;  // no subscription to oneself
  XmlElement stanza = presence;
  stanza.SetAttribute("from", user.BareString());
  stanza.SetAttribute("to", contact.BareString());

  // Both entries at once: the user's (for this outbound step) and the contact's (for the
  // inbound step that usually follows), unless the caller read them ahead. Each step still
  // compares-and-swaps, so a read that is stale by then only costs a retry.
  if (reads->has_value() && !((*reads)->user == user && (*reads)->contact == contact)) {
    reads->reset();
  }
  if (!reads->has_value()) {
    reads->emplace(SubscriptionReads{user, contact});
    co_await ReadPair(&**reads);
  }
  absl::StatusOr<std::optional<std::string>>& mine = (*reads)->mine;
  absl::StatusOr<OwnedItem>& theirs = (*reads)->theirs;
  if (!mine.ok()) co_return mine.status();
  // Both steps in one atomic write when the store can and the stanza goes on to the contact:
  // decided from the two entries read, and taken only if neither changed since. Otherwise (or
  // when that write finds a change) one step after the other, each its own compare-and-swap.
  BothSteps both;
  if (store_->WritesPairsAtomically() && theirs.ok() && theirs->user_exists) {
    absl::Status written =
        co_await WriteBothSteps(store_, limits_.max_pending, *verb, stanza, **reads, &both);
    if (!written.ok()) co_return written;
  }
  const OutboundOutcome& outcome = both.outcome;
  Applied& applied = both.outbound;
  if (!both.written) {
    absl::Status mutated = co_await Mutate(store_, user, contact.BareString(), limits_.max_pending,
                                           OutboundDecision(*verb, &both.outcome),
                                           both.stale ? nullptr : &*mine, &applied);
    if (!mutated.ok()) co_return mutated;
  }
  Count(applied, VerbName(*verb), "outbound", &out);
  Flow flow{&out, {}};
  if (outcome.unavailable_first) AddSnapshot(user, contact, /*unavailable=*/true, &out);
  if (outcome.route && both.written) {
    InboundEffects(contact, user, *verb, stanza, 0, &flow, both.inbound, both.inbound_outcome);
  } else if (outcome.route) {
    OwnedItem* read = theirs.ok() && !both.stale ? &*theirs : nullptr;
    absl::Status s = co_await ProcessInbound(contact, user, *verb, stanza, 0, &flow, read);
    if (!s.ok()) co_return s;
  }
  if (applied.pushed) {
    AddPush(user, contact.BareString(), applied.after ? &*applied.after : nullptr, applied.version,
            &out);
  }
  if (outcome.send_current_presence) AddSnapshot(user, contact, /*unavailable=*/false, &out);
  absl::Status drained = co_await DrainDeferred(&flow);
  if (!drained.ok()) co_return drained;
  co_return out;
}

Task<absl::StatusOr<RosterOutput>> RosterProcessor::HandleInbound(const Jid& receiver,
                                                                  const Jid& sender,
                                                                  const XmlElement& presence) {
  RosterOutput out;
  std::optional<SubscriptionVerb> verb = VerbOf(presence.Attribute("type"));
  if (!verb) co_return out;
  XmlElement stanza = presence;
  stanza.SetAttribute("from", sender.BareString());
  stanza.SetAttribute("to", receiver.BareString());
  Flow flow{&out, {}};
  absl::Status s =
      co_await ProcessInbound(receiver.Bare(), sender.Bare(), *verb, stanza, 0, &flow, nullptr);
  if (s.ok()) s = co_await DrainDeferred(&flow);
  if (!s.ok()) co_return s;
  co_return out;
}

Task<absl::Status> RosterProcessor::DrainDeferred(Flow* flow) {
  for (size_t i = 0; i < flow->deferred.size(); ++i) {
    const Deferred d = flow->deferred[i];  // a copy: processing may append
    if (!d.is_reply) {
      AddSnapshot(d.receiver, d.sender, d.unavailable, flow->out);
      continue;
    }
    const XmlElement stanza = SubscriptionStanza(d.sender, d.receiver, d.verb);
    absl::Status s =
        co_await ProcessInbound(d.receiver, d.sender, d.verb, stanza, d.depth, flow, nullptr);
    if (!s.ok()) co_return s;
  }
  flow->deferred.clear();
  co_return absl::OkStatus();
}

Task<absl::Status> RosterProcessor::ProcessInbound(const Jid& receiver, const Jid& sender,
                                                   SubscriptionVerb verb, const XmlElement& stanza,
                                                   int depth, Flow* flow, OwnedItem* read) {
  if (depth > 2) co_return absl::OkStatus();
  // The receiver's account and entry in one round trip; the entry seeds the first CAS.
  absl::StatusOr<OwnedItem> fetched;
  OwnedItem* owned = read;
  if (owned == nullptr) {
    fetched = co_await store_->GetOwnedItem(receiver.BareString(), sender.BareString());
    if (!fetched.ok()) co_return fetched.status();
    owned = &*fetched;
  }
  if (!owned->user_exists) co_return absl::OkStatus();  // A1: ignore silently, reveal nothing
  const std::string stanza_xml = SerializeXml(stanza);
  InboundOutcome outcome;
  Applied applied;
  absl::Status mutated =
      co_await Mutate(store_, receiver, sender.BareString(), limits_.max_pending,
                      InboundDecision(verb, stanza_xml, &outcome), &owned->record, &applied);
  if (absl::IsResourceExhausted(mutated) && depth == 0) {
    // The contact cannot keep more requests: tell the sender, change nothing more.
    flow->out->replies.push_back(MakeErrorReply(stanza, StanzaErrorCondition::kResourceConstraint,
                                                "the contact has too many waiting requests"));
    co_return absl::OkStatus();
  }
  if (!mutated.ok()) co_return mutated;
  InboundEffects(receiver, sender, verb, stanza, depth, flow, applied, outcome);
  co_return absl::OkStatus();
}

void RosterProcessor::InboundEffects(const Jid& receiver, const Jid& sender,
                                     SubscriptionVerb verb, const XmlElement& stanza, int depth,
                                     Flow* flow, const Applied& applied,
                                     const InboundOutcome& outcome) {
  RosterOutput* out = flow->out;
  Count(applied, VerbName(verb), "inbound", out);
  if (outcome.deliver) {
    Audience audience = verb == SubscriptionVerb::kSubscribe
                            ? xmpp::presence::v1::AUDIENCE_AVAILABLE
                            : xmpp::presence::v1::AUDIENCE_AVAILABLE_OR_INTERESTED;
    AddDelivery(receiver.BareString(), audience, stanza, false, out);
  }
  if (applied.pushed) {
    AddPush(receiver, sender.BareString(), applied.after ? &*applied.after : nullptr,
            applied.version, out);
  }
  if (outcome.unavailable_to_sender) {
    Deferred unavailable;  // back to the sender: after the sender's own push
    unavailable.is_reply = false;
    unavailable.unavailable = true;
    unavailable.receiver = receiver;  // from
    unavailable.sender = sender;      // to
    flow->deferred.push_back(unavailable);
  }
  if (outcome.auto_reply != AutoReply::kNone) {
    Deferred reply;
    reply.receiver = sender;
    reply.sender = receiver;
    reply.verb = outcome.auto_reply == AutoReply::kSubscribed ? SubscriptionVerb::kSubscribed
                                                              : SubscriptionVerb::kUnsubscribed;
    reply.depth = depth + 1;
    flow->deferred.push_back(reply);
  }
  if (outcome.current_presence_to_sender) {
    Deferred presence;
    presence.is_reply = false;
    presence.receiver = receiver;  // from
    presence.sender = sender;      // to
    flow->deferred.push_back(presence);
  }
}

}  // namespace xc
