#include "services/presence/presence_router.h"

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/base/log.h"
#include "core/stanza/errors.h"
#include "core/stanza/namespaces.h"
#include "core/stanza/presence.h"
#include "core/stanza/stanza.h"
#include "core/store/keys.h"
#include "core/xml/xml_fragment.h"
#include "core/xml/xml_serializer.h"
#include "proto/xmpp/store/v1/records.pb.h"

namespace xc {

using xmpp::presence::v1::Audience;
using xmpp::store::v1::RosterItemRecord;
using xmpp::store::v1::SessionRecord;

namespace {
bool IsUnreachable(const absl::Status& s);
}  // namespace

// Collects what one input delivers, grouped per gateway in order, and writes it at the end.
class PresenceRouter::Outbox {
 public:
  explicit Outbox(PresenceRouter* router) : router_(router) {}

  void Add(const std::string& gateway_id, const std::string& full_jid, std::string xml,
           bool address_to_session) {
    auto [it, inserted] = batches_.try_emplace(gateway_id);
    if (inserted) order_.push_back(gateway_id);
    xmpp::gateway::v1::DeliverItem* item = it->second.add_items();
    item->set_full_jid(full_jid);
    item->set_xml(std::move(xml));
    item->set_address_to_session(address_to_session);
  }

  void Flush() {
    for (const std::string& gateway : order_) {
      absl::StatusOr<std::vector<std::string>> missing =
          router_->deliverer_->Deliver(gateway, batches_[gateway]);
      if (!missing.ok()) {
        XC_LOG(WARNING) << "delivery to gateway " << gateway << " failed: " << missing.status();
        if (IsUnreachable(missing.status())) router_->FenceGateway(gateway);
        continue;
      }
      for (const std::string& full : *missing) {
        absl::StatusOr<Jid> jid = Jid::Parse(full);
        if (jid.ok()) (void)router_->directory_->Remove(*jid);
      }
    }
    batches_.clear();
    order_.clear();
  }

 private:
  PresenceRouter* router_;
  std::map<std::string, xmpp::gateway::v1::DeliverRequest> batches_;
  std::vector<std::string> order_;
};

namespace {

bool IsUnreachable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

bool Matches(const SessionRecord& r, Audience audience) {
  switch (audience) {
    case xmpp::presence::v1::AUDIENCE_AVAILABLE:
      return r.available();
    case xmpp::presence::v1::AUDIENCE_INTERESTED:
      return r.interested();
    case xmpp::presence::v1::AUDIENCE_AVAILABLE_OR_INTERESTED:
      return r.available() || r.interested();
    default:
      return false;
  }
}

XmlElement WithAddresses(XmlElement stanza, const std::string& from, const std::string& to) {
  SetOrRemoveAttribute(&stanza, "from", from);
  SetOrRemoveAttribute(&stanza, "to", to);
  return stanza;
}

XmlElement UnavailablePresence(const std::string& from, const std::string& to) {
  XmlElement p("presence", std::string(kNsClient));
  p.SetAttribute("from", from);
  if (!to.empty()) p.SetAttribute("to", to);
  p.SetAttribute("type", "unavailable");
  return p;
}

}  // namespace

PresenceRouter::PresenceRouter(SessionDirectory* directory, RedisClient* redis,
                               GatewayDeliverer* deliverer, Clock* clock,
                               PresenceRouterOptions options)
    : directory_(directory), redis_(redis), deliverer_(deliverer), clock_(clock),
      options_(options) {}

void PresenceRouter::FenceGateway(const std::string& gateway_id) {
  // Fence first, then drop the heartbeat: a beat that races this either lands before the DEL or
  // sees the fence. The reaper then ends the gateway's sessions (unavailable to contacts), and
  // the gateway, seeing the fence, closes its streams and re-registers.
  absl::StatusOr<std::vector<RedisReply>> r = redis_->Pipeline(
      {{"SET", keys::GatewayFenced(gateway_id), "1", "PX", "60000"},
       {"DEL", keys::GatewayAlive(gateway_id)}});
  if (!r.ok()) {
    XC_LOG(WARNING) << "cannot fence gateway " << gateway_id << ": " << r.status();
    return;
  }
  XC_LOG(WARNING) << "gateway " << gateway_id
                  << " unreachable after retries; fenced, its sessions will be reaped";
}

absl::StatusOr<std::string> PresenceRouter::BindSession(absl::string_view gateway_id,
                                                        const Jid& bare,
                                                        absl::string_view resource) {
  absl::StatusOr<std::string> bound = directory_->Bind(bare.Bare(), resource, gateway_id);
  if (!bound.ok()) return bound.status();
  absl::StatusOr<Jid> full = bare.WithResource(*bound);
  if (!full.ok()) return full.status();
  return full->ToString();
}

absl::Status PresenceRouter::EndSession(const Jid& full) {
  absl::StatusOr<std::vector<SessionEntry>> sessions = directory_->List(full.Bare());
  if (!sessions.ok()) return sessions.status();
  bool available = false;
  for (const SessionEntry& e : *sessions) {
    if (e.resource == full.resource()) available = e.record.available();
  }
  Outbox out(this);
  if (available) {
    // §4.5.2: the server generates the unavailable the client did not send.
    absl::Status s = BroadcastUnavailable(full, nullptr, &out);
    if (!s.ok()) return s;
  }
  absl::StatusOr<std::optional<SessionRecord>> removed = directory_->Remove(full);
  out.Flush();
  return removed.status();
}

absl::Status PresenceRouter::SetInterested(const Jid& full) {
  absl::StatusOr<std::vector<SessionEntry>> sessions = directory_->List(full.Bare());
  if (!sessions.ok()) return sessions.status();
  for (SessionEntry& e : *sessions) {
    if (e.resource != full.resource()) continue;
    e.record.set_interested(true);
    return directory_->Update(full, e.record);
  }
  return absl::NotFoundError("no such session");
}

absl::StatusOr<PresenceRouter::Contacts> PresenceRouter::ReadContacts(const Jid& bare) {
  absl::StatusOr<RedisReply> r = redis_->Command({"HGETALL", keys::Roster(bare.BareString())});
  if (!r.ok()) return r.status();
  Contacts contacts;
  for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
    RosterItemRecord record;
    if (!record.ParseFromString(r->elements[i + 1].str)) continue;
    absl::StatusOr<Jid> contact = Jid::Parse(r->elements[i].str);
    if (!contact.ok()) continue;
    if (record.from()) contacts.presence_to.push_back(*contact);
    if (record.to()) contacts.presence_of.push_back(*contact);
  }
  return contacts;
}

template <typename XmlSource>
absl::Status PresenceRouter::DeliverTo(const Jid& to, Audience audience, const XmlSource& xml_source,
                                       bool address_each, Outbox* out) {
  absl::StatusOr<std::vector<SessionEntry>> sessions = directory_->List(to.Bare());
  if (!sessions.ok()) return sessions.status();
  std::string xml;  // serialized once, and only if someone receives it
  for (const SessionEntry& e : *sessions) {
    const bool match = audience == xmpp::presence::v1::AUDIENCE_FULL_JID
                           ? e.resource == to.resource()
                           : Matches(e.record, audience);
    if (!match) continue;
    if (xml.empty()) xml = xml_source();
    out->Add(e.record.gateway_id(), absl::StrCat(to.BareString(), "/", e.resource), xml,
             address_each);
  }
  return absl::OkStatus();
}

absl::Status PresenceRouter::DeliverToBare(const Jid& bare, Audience audience,
                                           const XmlElement& stanza, bool address_each,
                                           Outbox* out) {
  return DeliverTo(bare, audience, [&] { return SerializeXml(stanza); }, address_each, out);
}

absl::Status PresenceRouter::BroadcastUnavailable(const Jid& full, const XmlElement* stanza,
                                                  Outbox* out) {
  const Jid bare = full.Bare();
  XmlElement unavailable =
      stanza != nullptr ? *stanza : UnavailablePresence(full.ToString(), "");
  unavailable.SetAttribute("from", full.ToString());
  absl::StatusOr<Contacts> contacts = ReadContacts(bare);
  if (!contacts.ok()) return contacts.status();
  for (const Jid& contact : contacts->presence_to) {
    absl::Status s = DeliverToBare(contact, xmpp::presence::v1::AUDIENCE_AVAILABLE,
                                   WithAddresses(unavailable, full.ToString(), contact.BareString()),
                                   false, out);
    if (!s.ok()) return s;
  }
  // The user's other available resources, and whoever got directed presence (§4.6.3).
  absl::StatusOr<std::vector<SessionEntry>> own = directory_->List(bare);
  if (!own.ok()) return own.status();
  std::string xml = SerializeXml(WithAddresses(unavailable, full.ToString(), ""));
  for (SessionEntry& e : *own) {
    if (e.resource == full.resource()) {
      for (const std::string& to : e.record.directed_to()) {
        absl::StatusOr<Jid> target = Jid::Parse(to);
        if (!target.ok()) continue;
        absl::Status s = DeliverDirected(*target, WithAddresses(unavailable, full.ToString(), to), out);
        if (!s.ok()) return s;
      }
      e.record.clear_directed_to();
      e.record.set_available(false);
      (void)directory_->Update(full, e.record);
      continue;
    }
    if (e.record.available()) {
      out->Add(e.record.gateway_id(), absl::StrCat(bare.BareString(), "/", e.resource), xml, true);
    }
  }
  (void)redis_->Command({"HDEL", keys::Presence(bare.BareString()), full.resource()});
  return directory_->SetLastUnavailable(bare, clock_->Now());
}

absl::StatusOr<std::vector<XmlElement>> PresenceRouter::HandlePresence(const Jid& session,
                                                                       const XmlElement& presence) {
  std::vector<XmlElement> replies;
  absl::StatusOr<Presence> parsed = ParsePresence(presence);
  if (!parsed.ok()) {
    replies.push_back(MakeErrorReply(presence, StanzaErrorConditionOf(parsed.status())));
    return replies;
  }
  Outbox out(this);
  const Jid bare = session.Bare();
  const std::string to = presence.Attribute("to");
  absl::Status status;
  if (!to.empty()) {
    absl::StatusOr<Jid> target = Jid::Parse(to);
    if (!target.ok()) {
      if (parsed->type != PresenceType::kError) {
        replies.push_back(MakeErrorReply(presence, StanzaErrorCondition::kJidMalformed));
      }
      return replies;
    }
    XmlElement stamped = WithAddresses(presence, session.ToString(), to);
    if (parsed->type == PresenceType::kProbe) {
      absl::StatusOr<std::vector<SessionEntry>> own = directory_->List(bare);
      if (!own.ok()) return own.status();
      for (const SessionEntry& e : *own) {
        if (e.resource == session.resource()) {
          status = AnswerProbe(session, e.record.gateway_id(), *target, presence, &out);
        }
      }
    } else if (parsed->type == PresenceType::kError) {
      status = DeliverDirected(*target, stamped, &out, /*full_jid_only=*/true);  // A11
    } else {
      status = RememberDirected(session, *target, parsed->type == PresenceType::kAvailable);
      if (status.ok()) status = DeliverDirected(*target, stamped, &out);
    }
  } else if (parsed->type == PresenceType::kAvailable) {
    absl::StatusOr<std::vector<SessionEntry>> own = directory_->List(bare);
    if (!own.ok()) return own.status();
    std::optional<SessionRecord> mine;
    for (const SessionEntry& e : *own) {
      if (e.resource == session.resource()) mine = e.record;
    }
    if (!mine) return absl::NotFoundError("session is not bound");
    const bool initial = !mine->available();
    XmlElement stamped = WithAddresses(presence, session.ToString(), "");
    mine->set_available(true);
    mine->set_priority(parsed->EffectivePriority());
    status = directory_->Update(session, *mine);
    if (status.ok()) status = directory_->SetLastPresence(session, SerializeXml(stamped));
    absl::StatusOr<Contacts> contacts = ReadContacts(bare);
    if (!contacts.ok()) return contacts.status();
    // §4.2.2 / §4.4.2: to from/both contacts, from the full JID, addressed to their bare JID.
    for (const Jid& contact : contacts->presence_to) {
      if (!status.ok()) break;
      status = DeliverToBare(contact, xmpp::presence::v1::AUDIENCE_AVAILABLE,
                             WithAddresses(stamped, session.ToString(), contact.BareString()),
                             false, &out);
    }
    // Echo to every available resource of the user, the sender included.
    std::string own_xml = SerializeXml(stamped);
    for (const SessionEntry& e : *own) {
      if (e.record.available() || e.resource == session.resource()) {
        out.Add(e.record.gateway_id(), absl::StrCat(bare.BareString(), "/", e.resource), own_xml,
                true);
      }
    }
    if (initial && status.ok()) {
      // The other resources' presence, then probes of to/both contacts (answered locally and
      // only to the new resource, A10), then waiting subscription requests (§3.1.3).
      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> mine_last =
          directory_->LastPresences(bare);
      if (!mine_last.ok()) return mine_last.status();
      for (const auto& [resource, xml] : *mine_last) {
        if (resource == session.resource()) continue;
        absl::StatusOr<XmlElement> p = ParseStanzaXml(xml);
        if (p.ok()) {
          out.Add(mine->gateway_id(), session.ToString(),
                  SerializeXml(WithAddresses(*p, p->Attribute("from"), session.ToString())), false);
        }
      }
      XmlElement probe("presence", std::string(kNsClient));
      probe.SetAttribute("type", "probe");
      for (const Jid& contact : contacts->presence_of) {
        status = AnswerProbe(session, mine->gateway_id(), contact, probe, &out);
        if (!status.ok()) break;
      }
      absl::StatusOr<RedisReply> pending = redis_->Command({"HVALS", keys::Pending(bare.BareString())});
      if (!pending.ok()) return pending.status();
      for (const RedisReply& xml : pending->elements) {
        out.Add(mine->gateway_id(), session.ToString(), xml.str, false);
      }
      if (options_.waiting_requests_delivered != nullptr) {
        options_.waiting_requests_delivered->Increment(pending->elements.size());
      }
    }
  } else if (parsed->type == PresenceType::kUnavailable) {
    absl::StatusOr<std::vector<SessionEntry>> own = directory_->List(bare);
    if (!own.ok()) return own.status();
    for (const SessionEntry& e : *own) {
      if (e.resource == session.resource() && e.record.available()) {
        status = BroadcastUnavailable(session, &presence, &out);
      }
    }
  }
  // probe / error without `to`: nothing to do (a probe of oneself reveals nothing new).
  if (!status.ok()) return status;
  out.Flush();
  return replies;
}

absl::Status PresenceRouter::DeliverDirected(const Jid& target, const XmlElement& stanza,
                                             Outbox* out, bool full_jid_only) {
  if (!target.is_full() && full_jid_only) return absl::OkStatus();
  // A full JID reaches that resource; a bare JID every available resource, and nothing is
  // stored when there is none (§8.5.2).
  return DeliverToBare(target,
                       target.is_full() ? xmpp::presence::v1::AUDIENCE_FULL_JID
                                        : xmpp::presence::v1::AUDIENCE_AVAILABLE,
                       stanza, false, out);
}

absl::Status PresenceRouter::RememberDirected(const Jid& session, const Jid& target,
                                              bool available) {
  // §4.6.2: a subscriber already gets broadcasts; the list is for everyone else.
  absl::StatusOr<Contacts> contacts = ReadContacts(session.Bare());
  if (!contacts.ok()) return contacts.status();
  for (const Jid& c : contacts->presence_to) {
    if (c == target.Bare()) return absl::OkStatus();
  }
  absl::StatusOr<std::vector<SessionEntry>> own = directory_->List(session.Bare());
  if (!own.ok()) return own.status();
  for (SessionEntry& e : *own) {
    if (e.resource != session.resource()) continue;
    const std::string key = target.ToString();
    auto* list = e.record.mutable_directed_to();
    auto it = std::find(list->begin(), list->end(), key);
    if (available && it == list->end()) {
      if (list->size() >= 1000) return absl::OkStatus();  // bounded; the oldest stay
      list->Add(std::string(key));
    } else if (!available && it != list->end()) {
      list->erase(it);  // §4.6.3: a directed unavailable was already sent
    } else {
      return absl::OkStatus();
    }
    return directory_->Update(session, e.record);
  }
  return absl::OkStatus();
}

absl::Status PresenceRouter::AnswerProbe(const Jid& prober, const std::string& prober_gateway,
                                         const Jid& target, const XmlElement& probe,
                                         Outbox* out) {
  const Jid target_bare = target.Bare();
  // §4.3.2: only a subscriber (the target's item for the prober is from/both) learns anything.
  absl::StatusOr<RedisReply> item =
      redis_->Command({"HGET", keys::Roster(target_bare.BareString()), prober.BareString()});
  if (!item.ok()) return item.status();
  RosterItemRecord record;
  bool subscribed = !item->is_nil() && record.ParseFromString(item->str) && record.from();
  if (!subscribed) {
    XmlElement reply("presence", std::string(kNsClient));
    reply.SetAttribute("from", target_bare.BareString());
    reply.SetAttribute("to", prober.ToString());
    reply.SetAttribute("type", "unsubscribed");
    out->Add(prober_gateway, prober.ToString(), SerializeXml(reply), false);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> last =
      directory_->LastPresences(target_bare);
  if (!last.ok()) return last.status();
  bool any = false;
  for (const auto& [resource, xml] : *last) {
    if (target.is_full() && resource != target.resource()) continue;
    absl::StatusOr<XmlElement> p = ParseStanzaXml(xml);
    if (!p.ok()) continue;
    any = true;
    out->Add(prober_gateway, prober.ToString(),
             SerializeXml(WithAddresses(*p, p->Attribute("from"), prober.ToString())), false);
  }
  if (!any && options_.probe_answers_last_unavailable) {
    XmlElement reply = UnavailablePresence(target_bare.BareString(), prober.ToString());
    if (!probe.Attribute("id").empty()) reply.SetAttribute("id", probe.Attribute("id"));
    absl::StatusOr<std::optional<absl::Time>> when = directory_->LastUnavailable(target_bare);
    if (when.ok() && when->has_value()) {
      XmlElement& delay = reply.AddChild("delay", std::string(kNsDelay));
      delay.SetAttribute("from", target_bare.domain());
      delay.SetAttribute("stamp", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", **when, absl::UTCTimeZone()));
    }
    out->Add(prober_gateway, prober.ToString(), SerializeXml(reply), false);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<XmlElement>> PresenceRouter::RouteStanza(const Jid& session,
                                                                    const XmlElement& stanza) {
  std::vector<XmlElement> replies;
  const StanzaKind kind = KindOf(stanza);
  const std::string type = stanza.Attribute("type");
  const bool is_error = type == "error";
  absl::StatusOr<Jid> target = Jid::Parse(stanza.Attribute("to"));
  if (!target.ok()) {
    if (!is_error) replies.push_back(MakeErrorReply(stanza, StanzaErrorCondition::kJidMalformed));
    return replies;
  }
  absl::StatusOr<std::vector<SessionEntry>> sessions = directory_->List(target->Bare());
  if (!sessions.ok()) return sessions.status();
  XmlElement stamped = WithAddresses(stanza, session.ToString(), target->ToString());
  Outbox out(this);
  bool delivered = false;
  if (target->is_full()) {
    for (const SessionEntry& e : *sessions) {
      if (e.resource == target->resource()) {
        out.Add(e.record.gateway_id(), target->ToString(), SerializeXml(stamped), false);
        delivered = true;
      }
    }
  }
  if (!delivered && kind == StanzaKind::kMessage && type != "groupchat" && type != "error") {
    // §8.5.2.1.1 / §8.5.3.2.1: the available resources of highest non-negative priority.
    int best = -1;
    for (const SessionEntry& e : *sessions) {
      if (e.record.available() && e.record.priority() >= 0 && e.record.priority() > best) {
        best = e.record.priority();
      }
    }
    for (const SessionEntry& e : *sessions) {
      if (best >= 0 && e.record.available() && e.record.priority() == best) {
        out.Add(e.record.gateway_id(), absl::StrCat(target->BareString(), "/", e.resource),
                SerializeXml(stamped), false);
        delivered = true;
      }
    }
  }
  if (!delivered && !is_error && type != "result") {
    // No offline storage: tell the sender (RFC 6121 §8.5.2.2, §8.5.3.2.1; IQs §8.5.3.1).
    if (kind == StanzaKind::kIq || kind == StanzaKind::kMessage) {
      replies.push_back(MakeErrorReply(stamped, StanzaErrorCondition::kServiceUnavailable));
    }
  }
  out.Flush();
  return replies;
}

absl::Status PresenceRouter::DeliverSnapshot(const xmpp::presence::v1::PresenceSnapshot& snapshot,
                                             Outbox* out) {
  absl::StatusOr<Jid> from = Jid::Parse(snapshot.from_bare());
  absl::StatusOr<Jid> to = Jid::Parse(snapshot.to_bare());
  if (!from.ok() || !to.ok()) return absl::InvalidArgumentError("bad snapshot addresses");
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> last =
      directory_->LastPresences(*from);
  if (!last.ok()) return last.status();
  for (const auto& [resource, xml] : *last) {
    std::string full = absl::StrCat(from->BareString(), "/", resource);
    XmlElement p;
    if (snapshot.unavailable()) {
      p = UnavailablePresence(full, to->BareString());
    } else {
      absl::StatusOr<XmlElement> parsed = ParseStanzaXml(xml);
      if (!parsed.ok()) continue;
      p = WithAddresses(*parsed, full, to->BareString());
    }
    absl::Status s = DeliverToBare(*to, xmpp::presence::v1::AUDIENCE_AVAILABLE, p, false, out);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PresenceRouter::Dispatch(const xmpp::presence::v1::DispatchRequest& request) {
  Outbox out(this);
  for (const xmpp::presence::v1::Effect& effect : request.effects()) {
    absl::Status s;
    if (effect.has_presence_snapshot()) {
      s = DeliverSnapshot(effect.presence_snapshot(), &out);
    } else if (effect.has_delivery()) {
      const xmpp::presence::v1::Delivery& d = effect.delivery();
      absl::StatusOr<Jid> to = Jid::Parse(d.to());
      if (!to.ok()) continue;
      s = DeliverTo(*to, d.audience(), [&] { return d.stanza().xml(); },
                    d.address_each_recipient(), &out);
    }
    if (!s.ok()) return s;
  }
  out.Flush();
  return absl::OkStatus();
}

}  // namespace xc
