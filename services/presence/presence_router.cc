#include "services/presence/presence_router.h"

#include <algorithm>
#include <map>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
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

bool IsUnreachable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

}  // namespace

// Collects what one input delivers, grouped per gateway in order, and writes it at the end.
class PresenceRouter::Outbox {
 public:
  explicit Outbox(PresenceRouter* router, ReturnPath* back = nullptr)
      : router_(router), back_(back != nullptr && back->items != nullptr ? back : nullptr) {}

  void Add(const std::string& gateway_id, std::string full_jid, std::string xml,
           bool address_to_session) {
    auto [it, inserted] = batches_.try_emplace(gateway_id);
    if (inserted) order_.push_back(gateway_id);
    xmpp::gateway::v1::DeliverItem* item = it->second.add_items();
    item->set_full_jid(std::move(full_jid));
    item->set_xml(std::move(xml));
    item->set_address_to_session(address_to_session);
  }

  // Delivers to every gateway at once and returns when all have answered; what is for the
  // calling gateway goes on the return path.
  Task<bool> Flush() {
    std::vector<Task<bool>> sends;
    sends.reserve(order_.size());
    for (const std::string& gateway : order_) {
      if (back_ != nullptr && gateway == back_->gateway_id) {
        for (xmpp::gateway::v1::DeliverItem& item : *batches_[gateway].mutable_items()) {
          back_->items->Add(std::move(item));
        }
        continue;
      }
      sends.push_back(Send(gateway, std::move(batches_[gateway])));
    }
    batches_.clear();
    order_.clear();
    if (sends.size() == 1) {
      co_await std::move(sends[0]);
    } else if (!sends.empty()) {
      co_await WhenAll(std::move(sends));
    }
    co_return true;
  }

 private:
  Task<bool> Send(std::string gateway, xmpp::gateway::v1::DeliverRequest request) {
    absl::StatusOr<std::vector<std::string>> missing =
        co_await router_->deliverer_->Deliver(gateway, std::move(request));
    if (!missing.ok()) {
      XC_LOG(WARNING) << "delivery to gateway " << gateway << " failed: " << missing.status();
      if (IsUnreachable(missing.status())) co_await router_->FenceGateway(gateway);
      co_return false;
    }
    for (const std::string& full : *missing) {
      absl::StatusOr<Jid> jid = Jid::Parse(full);
      if (jid.ok()) (void)co_await router_->directory_->Remove(*jid);
    }
    co_return true;
  }

  PresenceRouter* router_;
  ReturnPath* back_;
  std::map<std::string, xmpp::gateway::v1::DeliverRequest> batches_;
  std::vector<std::string> order_;
};

namespace {

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

std::string FullJid(const Jid& bare, const std::string& resource) {
  return absl::StrCat(bare.BareString(), "/", resource);
}

bool Subscribed(const RedisReply& item) {
  RosterItemRecord record;
  return !item.is_nil() && record.ParseFromString(item.str) && record.from();
}

}  // namespace

PresenceRouter::PresenceRouter(SessionDirectory* directory, AsyncRedisClient* redis,
                               GatewayDeliverer* deliverer, Clock* clock,
                               PresenceRouterOptions options)
    : directory_(directory), redis_(redis), deliverer_(deliverer), clock_(clock),
      options_(options) {}

Task<bool> PresenceRouter::FenceGateway(std::string gateway_id) {
  // Fence first, then drop the heartbeat: a beat that races this either lands before the DEL or
  // sees the fence. The reaper then ends the gateway's sessions (unavailable to contacts), and
  // the gateway, seeing the fence, closes its streams and re-registers.
  std::vector<RedisArgv> cmds = {{"SET", keys::GatewayFenced(gateway_id), "1", "PX", "60000"},
                                 {"DEL", keys::GatewayAlive(gateway_id)}};
  absl::StatusOr<std::vector<RedisReply>> r = co_await redis_->Pipeline(std::move(cmds));
  if (!r.ok()) {
    XC_LOG(WARNING) << "cannot fence gateway " << gateway_id << ": " << r.status();
    co_return false;
  }
  XC_LOG(WARNING) << "gateway " << gateway_id
                  << " unreachable after retries; fenced, its sessions will be reaped";
  co_return true;
}

Task<absl::StatusOr<std::string>> PresenceRouter::BindSession(absl::string_view gateway_id,
                                                              const Jid& bare,
                                                              absl::string_view resource) {
  const Jid user = bare.Bare();
  absl::StatusOr<std::string> bound = co_await directory_->Bind(user, resource, gateway_id);
  if (!bound.ok()) co_return bound.status();
  absl::StatusOr<Jid> full = bare.WithResource(*bound);
  if (!full.ok()) co_return full.status();
  co_return full->ToString();
}

Task<absl::Status> PresenceRouter::EndSession(const Jid& full, ReturnPath* back) {
  const Jid bare = full.Bare();
  absl::StatusOr<std::vector<SessionEntry>> sessions = co_await directory_->List(bare);
  if (!sessions.ok()) co_return sessions.status();
  bool available = false;
  for (const SessionEntry& e : *sessions) {
    if (e.resource == full.resource()) available = e.record.available();
  }
  Outbox out(this, back);
  if (available) {
    // §4.5.2: the server generates the unavailable the client did not send.
    absl::Status s = co_await BroadcastUnavailable(full, nullptr, &out);
    if (!s.ok()) co_return s;
  }
  absl::StatusOr<std::optional<SessionRecord>> removed = co_await directory_->Remove(full);
  co_await out.Flush();
  co_return removed.status();
}

Task<absl::Status> PresenceRouter::SetInterested(const Jid& full) {
  const Jid bare = full.Bare();
  absl::StatusOr<std::vector<SessionEntry>> sessions = co_await directory_->List(bare);
  if (!sessions.ok()) co_return sessions.status();
  for (SessionEntry& e : *sessions) {
    if (e.resource != full.resource()) continue;
    e.record.set_interested(true);
    co_return co_await directory_->Update(full, e.record);
  }
  co_return absl::NotFoundError("no such session");
}

Task<absl::StatusOr<PresenceRouter::Contacts>> PresenceRouter::ReadContacts(const Jid& bare) {
  RedisArgv cmd = {"HGETALL", keys::Roster(bare.BareString())};
  absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
  if (!r.ok()) co_return r.status();
  Contacts contacts;
  for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
    RosterItemRecord record;
    if (!record.ParseFromString(r->elements[i + 1].str)) continue;
    if (!record.from() && !record.to()) continue;
    absl::StatusOr<Jid> contact = Jid::Parse(r->elements[i].str);
    if (!contact.ok()) continue;
    if (record.from()) contacts.presence_to.push_back(*contact);
    if (record.to()) contacts.presence_of.push_back(*contact);
  }
  co_return contacts;
}

Task<absl::StatusOr<const std::vector<SessionEntry>*>> PresenceRouter::Sessions(
    const Jid& bare, SessionCache* cache) {
  const std::string key = bare.BareString();
  auto it = cache->find(key);
  if (it != cache->end()) co_return &it->second;
  absl::StatusOr<std::vector<SessionEntry>> sessions = co_await directory_->List(bare);
  if (!sessions.ok()) co_return sessions.status();
  auto [slot, unused] = cache->try_emplace(key, *std::move(sessions));
  co_return &slot->second;
}

Task<absl::Status> PresenceRouter::DeliverTo(const Jid& to, Audience audience,
                                             const std::string& xml, bool address_each,
                                             Outbox* out, SessionCache* cache) {
  SessionCache local;
  absl::StatusOr<const std::vector<SessionEntry>*> sessions =
      co_await Sessions(to.Bare(), cache != nullptr ? cache : &local);
  if (!sessions.ok()) co_return sessions.status();
  for (const SessionEntry& e : **sessions) {
    const bool match = audience == xmpp::presence::v1::AUDIENCE_FULL_JID
                           ? e.resource == to.resource()
                           : Matches(e.record, audience);
    if (!match) continue;
    out->Add(e.record.gateway_id(), FullJid(to, e.resource), xml, address_each);
  }
  co_return absl::OkStatus();
}

Task<absl::Status> PresenceRouter::Broadcast(const std::vector<Jid>& contacts,
                                             const std::string& xml, Outbox* out) {
  if (contacts.empty()) co_return absl::OkStatus();
  absl::StatusOr<std::vector<std::vector<SessionEntry>>> all =
      co_await directory_->ListMany(contacts);
  if (!all.ok()) co_return all.status();
  for (size_t i = 0; i < contacts.size() && i < all->size(); ++i) {
    std::string addressed;  // built once per contact, only if someone receives it
    for (const SessionEntry& e : (*all)[i]) {
      if (!e.record.available()) continue;
      if (addressed.empty()) addressed = SetRootAttribute(xml, "to", contacts[i].BareString());
      out->Add(e.record.gateway_id(), FullJid(contacts[i], e.resource), addressed, false);
    }
  }
  co_return absl::OkStatus();
}

Task<absl::Status> PresenceRouter::BroadcastUnavailable(const Jid& full, const XmlElement* stanza,
                                                        Outbox* out) {
  const Jid bare = full.Bare();
  XmlElement unavailable =
      stanza != nullptr ? *stanza : UnavailablePresence(full.ToString(), "");
  unavailable.SetAttribute("from", full.ToString());
  absl::StatusOr<Contacts> contacts = co_await ReadContacts(bare);
  if (!contacts.ok()) co_return contacts.status();
  const std::string xml = SerializeXml(WithAddresses(unavailable, full.ToString(), ""));
  absl::Status s = co_await Broadcast(contacts->presence_to, xml, out);
  if (!s.ok()) co_return s;
  // The user's other available resources, and whoever got directed presence (§4.6.3).
  absl::StatusOr<std::vector<SessionEntry>> own = co_await directory_->List(bare);
  if (!own.ok()) co_return own.status();
  for (SessionEntry& e : *own) {
    if (e.resource == full.resource()) {
      for (const std::string& to : e.record.directed_to()) {
        absl::StatusOr<Jid> target = Jid::Parse(to);
        if (!target.ok()) continue;
        absl::Status d = co_await DeliverDirected(
            *target, WithAddresses(unavailable, full.ToString(), to), out);
        if (!d.ok()) co_return d;
      }
      e.record.clear_directed_to();
      e.record.set_available(false);
      (void)co_await directory_->Update(full, e.record);
      continue;
    }
    if (e.record.available()) out->Add(e.record.gateway_id(), FullJid(bare, e.resource), xml, true);
  }
  RedisArgv forget = {"HDEL", keys::Presence(bare.BareString()), full.resource()};
  (void)co_await redis_->Command(std::move(forget));
  co_return co_await directory_->SetLastUnavailable(bare, clock_->Now());
}

Task<absl::StatusOr<std::vector<XmlElement>>> PresenceRouter::HandlePresence(
    const Jid& session, const XmlElement& presence, ReturnPath* back) {
  std::vector<XmlElement> replies;
  absl::StatusOr<Presence> parsed = ParsePresence(presence);
  if (!parsed.ok()) {
    replies.push_back(MakeErrorReply(presence, StanzaErrorConditionOf(parsed.status())));
    co_return replies;
  }
  Outbox out(this, back);
  const Jid bare = session.Bare();
  const std::string to = presence.Attribute("to");
  absl::Status status;
  if (!to.empty()) {
    absl::StatusOr<Jid> target = Jid::Parse(to);
    if (!target.ok()) {
      if (parsed->type != PresenceType::kError) {
        replies.push_back(MakeErrorReply(presence, StanzaErrorCondition::kJidMalformed));
      }
      co_return replies;
    }
    XmlElement stamped = WithAddresses(presence, session.ToString(), to);
    if (parsed->type == PresenceType::kProbe) {
      absl::StatusOr<std::vector<SessionEntry>> own = co_await directory_->List(bare);
      if (!own.ok()) co_return own.status();
      for (const SessionEntry& e : *own) {
        if (e.resource == session.resource()) {
          const std::vector<Jid> one = {*target};
          status = co_await AnswerProbes(session, e.record.gateway_id(), one, presence, &out);
        }
      }
    } else if (parsed->type == PresenceType::kError) {
      status = co_await DeliverDirected(*target, stamped, &out, /*full_jid_only=*/true);  // A11
    } else {
      status =
          co_await RememberDirected(session, *target, parsed->type == PresenceType::kAvailable);
      if (status.ok()) status = co_await DeliverDirected(*target, stamped, &out);
    }
  } else if (parsed->type == PresenceType::kAvailable) {
    absl::StatusOr<std::vector<SessionEntry>> own = co_await directory_->List(bare);
    if (!own.ok()) co_return own.status();
    std::optional<SessionRecord> mine;
    for (const SessionEntry& e : *own) {
      if (e.resource == session.resource()) mine = e.record;
    }
    if (!mine) co_return absl::NotFoundError("session is not bound");
    const bool initial = !mine->available();
    const std::string own_xml = SerializeXml(WithAddresses(presence, session.ToString(), ""));
    mine->set_available(true);
    mine->set_priority(parsed->EffectivePriority());
    status = co_await directory_->Update(session, *mine);
    if (status.ok()) status = co_await directory_->SetLastPresence(session, own_xml);
    absl::StatusOr<Contacts> contacts = co_await ReadContacts(bare);
    if (!contacts.ok()) co_return contacts.status();
    // §4.2.2 / §4.4.2: to from/both contacts, from the full JID, addressed to their bare JID.
    if (status.ok()) status = co_await Broadcast(contacts->presence_to, own_xml, &out);
    // Echo to every available resource of the user, the sender included.
    for (const SessionEntry& e : *own) {
      if (e.record.available() || e.resource == session.resource()) {
        out.Add(e.record.gateway_id(), FullJid(bare, e.resource), own_xml, true);
      }
    }
    if (initial && status.ok()) {
      // The other resources' presence, then probes of to/both contacts (answered locally and
      // only to the new resource, A10), then waiting subscription requests (§3.1.3).
      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> mine_last =
          co_await directory_->LastPresences(bare);
      if (!mine_last.ok()) co_return mine_last.status();
      for (const auto& [resource, xml] : *mine_last) {
        if (resource == session.resource()) continue;
        out.Add(mine->gateway_id(), session.ToString(),
                SetRootAttribute(xml, "to", session.ToString()), false);
      }
      XmlElement probe("presence", std::string(kNsClient));
      probe.SetAttribute("type", "probe");
      status = co_await AnswerProbes(session, mine->gateway_id(), contacts->presence_of, probe,
                                     &out);
      RedisArgv waiting = {"HVALS", keys::Pending(bare.BareString())};
      absl::StatusOr<RedisReply> pending = co_await redis_->Command(std::move(waiting));
      if (!pending.ok()) co_return pending.status();
      for (RedisReply& xml : pending->elements) {
        out.Add(mine->gateway_id(), session.ToString(), std::move(xml.str), false);
      }
      if (options_.waiting_requests_delivered != nullptr) {
        options_.waiting_requests_delivered->Increment(pending->elements.size());
      }
    }
  } else if (parsed->type == PresenceType::kUnavailable) {
    absl::StatusOr<std::vector<SessionEntry>> own = co_await directory_->List(bare);
    if (!own.ok()) co_return own.status();
    for (const SessionEntry& e : *own) {
      if (e.resource == session.resource() && e.record.available()) {
        status = co_await BroadcastUnavailable(session, &presence, &out);
      }
    }
  }
  // probe / error without `to`: nothing to do (a probe of oneself reveals nothing new).
  if (!status.ok()) co_return status;
  co_await out.Flush();
  co_return replies;
}

Task<absl::Status> PresenceRouter::DeliverDirected(const Jid& target, const XmlElement& stanza,
                                                   Outbox* out, bool full_jid_only) {
  if (!target.is_full() && full_jid_only) co_return absl::OkStatus();
  // A full JID reaches that resource; a bare JID every available resource, and nothing is
  // stored when there is none (§8.5.2).
  co_return co_await DeliverTo(target,
                               target.is_full() ? xmpp::presence::v1::AUDIENCE_FULL_JID
                                                : xmpp::presence::v1::AUDIENCE_AVAILABLE,
                               SerializeXml(stanza), false, out);
}

Task<absl::Status> PresenceRouter::RememberDirected(const Jid& session, const Jid& target,
                                                    bool available) {
  // §4.6.2: a subscriber already gets broadcasts; the list is for everyone else.
  const Jid bare = session.Bare();
  absl::StatusOr<Contacts> contacts = co_await ReadContacts(bare);
  if (!contacts.ok()) co_return contacts.status();
  for (const Jid& c : contacts->presence_to) {
    if (c == target.Bare()) co_return absl::OkStatus();
  }
  absl::StatusOr<std::vector<SessionEntry>> own = co_await directory_->List(bare);
  if (!own.ok()) co_return own.status();
  for (SessionEntry& e : *own) {
    if (e.resource != session.resource()) continue;
    const std::string key = target.ToString();
    auto* list = e.record.mutable_directed_to();
    auto it = std::find(list->begin(), list->end(), key);
    if (available && it == list->end()) {
      if (list->size() >= 1000) co_return absl::OkStatus();  // bounded; the oldest stay
      list->Add(std::string(key));
    } else if (!available && it != list->end()) {
      list->erase(it);  // §4.6.3: a directed unavailable was already sent
    } else {
      co_return absl::OkStatus();
    }
    co_return co_await directory_->Update(session, e.record);
  }
  co_return absl::OkStatus();
}

Task<absl::Status> PresenceRouter::AnswerProbes(const Jid& prober,
                                                const std::string& prober_gateway,
                                                const std::vector<Jid>& targets,
                                                const XmlElement& probe, Outbox* out) {
  if (targets.empty()) co_return absl::OkStatus();
  // §4.3.2: only a subscriber (the target's item for the prober is from/both) learns anything.
  std::vector<RedisArgv> items;
  items.reserve(targets.size());
  for (const Jid& target : targets) {
    RedisArgv item = {"HGET", keys::Roster(target.BareString()), prober.BareString()};
    items.push_back(std::move(item));
  }
  absl::StatusOr<std::vector<RedisReply>> r = co_await redis_->Pipeline(std::move(items));
  if (!r.ok()) co_return r.status();
  std::vector<Jid> subscribed;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (Subscribed((*r)[i])) {
      subscribed.push_back(targets[i]);
      continue;
    }
    XmlElement reply("presence", std::string(kNsClient));
    reply.SetAttribute("from", targets[i].BareString());
    reply.SetAttribute("to", prober.ToString());
    reply.SetAttribute("type", "unsubscribed");
    out->Add(prober_gateway, prober.ToString(), SerializeXml(reply), false);
  }
  if (subscribed.empty()) co_return absl::OkStatus();
  std::vector<Jid> bares;
  bares.reserve(subscribed.size());
  for (const Jid& target : subscribed) bares.push_back(target.Bare());
  absl::StatusOr<std::vector<PresenceView>> views = co_await directory_->PresenceOf(bares);
  if (!views.ok()) co_return views.status();
  for (size_t i = 0; i < subscribed.size() && i < views->size(); ++i) {
    const Jid& target = subscribed[i];
    const PresenceView& view = (*views)[i];
    bool any = false;
    for (const auto& [resource, xml] : view.presences) {
      if (target.is_full() && resource != target.resource()) continue;
      any = true;
      out->Add(prober_gateway, prober.ToString(), SetRootAttribute(xml, "to", prober.ToString()),
               false);
    }
    if (any || !options_.probe_answers_last_unavailable) continue;
    XmlElement reply = UnavailablePresence(target.BareString(), prober.ToString());
    if (!probe.Attribute("id").empty()) reply.SetAttribute("id", probe.Attribute("id"));
    if (view.last_unavailable.has_value()) {
      XmlElement& delay = reply.AddChild("delay", std::string(kNsDelay));
      delay.SetAttribute("from", target.domain());
      delay.SetAttribute("stamp", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", *view.last_unavailable,
                                                   absl::UTCTimeZone()));
    }
    out->Add(prober_gateway, prober.ToString(), SerializeXml(reply), false);
  }
  co_return absl::OkStatus();
}

Task<absl::StatusOr<std::vector<XmlElement>>> PresenceRouter::RouteStanza(
    const Jid& session, const XmlElement& stanza, ReturnPath* back) {
  std::vector<XmlElement> replies;
  const StanzaKind kind = KindOf(stanza);
  const std::string type = stanza.Attribute("type");
  const bool is_error = type == "error";
  absl::StatusOr<Jid> target = Jid::Parse(stanza.Attribute("to"));
  if (!target.ok()) {
    if (!is_error) replies.push_back(MakeErrorReply(stanza, StanzaErrorCondition::kJidMalformed));
    co_return replies;
  }
  const Jid target_bare = target->Bare();
  absl::StatusOr<std::vector<SessionEntry>> sessions = co_await directory_->List(target_bare);
  if (!sessions.ok()) co_return sessions.status();
  XmlElement stamped = WithAddresses(stanza, session.ToString(), target->ToString());
  Outbox out(this, back);
  bool delivered = false;
  if (target->is_full()) {
    for (const SessionEntry& e : *sessions) {
      if (e.resource == target->resource()) {
        out.Add(e.record.gateway_id(), target->ToString(), SerializeXml(stamped), false);
        delivered = true;
      }
    }
  }
  const bool headline = kind == StanzaKind::kMessage && type == "headline";
  if (!delivered && kind == StanzaKind::kMessage && type != "groupchat" && type != "error") {
    // §8.5.2.1.1 / §8.5.3.2.1: a headline to every available resource of non-negative
    // priority; any other message to those of the highest non-negative priority.
    int best = -1;
    for (const SessionEntry& e : *sessions) {
      if (e.record.available() && e.record.priority() >= 0 && e.record.priority() > best) {
        best = e.record.priority();
      }
    }
    for (const SessionEntry& e : *sessions) {
      if (best >= 0 && e.record.available() && e.record.priority() >= 0 &&
          (headline || e.record.priority() == best)) {
        out.Add(e.record.gateway_id(), FullJid(*target, e.resource), SerializeXml(stamped),
                false);
        delivered = true;
      }
    }
  }
  if (!delivered && !is_error && type != "result" && !headline) {
    // No offline storage: tell the sender (RFC 6121 §8.5.2.2, §8.5.3.2.1; IQs §8.5.3.1). A
    // headline nobody can take is dropped silently (§8.5.2.2).
    if (kind == StanzaKind::kIq || kind == StanzaKind::kMessage) {
      replies.push_back(MakeErrorReply(stamped, StanzaErrorCondition::kServiceUnavailable));
    }
  }
  co_await out.Flush();
  co_return replies;
}

Task<absl::Status> PresenceRouter::DeliverSnapshot(
    const xmpp::presence::v1::PresenceSnapshot& snapshot, const PresenceView& from_presences,
    Outbox* out, SessionCache* cache) {
  absl::StatusOr<Jid> from = Jid::Parse(snapshot.from_bare());
  absl::StatusOr<Jid> to = Jid::Parse(snapshot.to_bare());
  if (!from.ok() || !to.ok()) co_return absl::InvalidArgumentError("bad snapshot addresses");
  for (const auto& [resource, xml] : from_presences.presences) {
    const std::string full = FullJid(*from, resource);
    const std::string p = snapshot.unavailable()
                              ? SerializeXml(UnavailablePresence(full, to->BareString()))
                              : SetRootAttribute(SetRootAttribute(xml, "from", full), "to",
                                                 to->BareString());
    absl::Status s =
        co_await DeliverTo(*to, xmpp::presence::v1::AUDIENCE_AVAILABLE, p, false, out, cache);
    if (!s.ok()) co_return s;
  }
  co_return absl::OkStatus();
}

Task<absl::Status> PresenceRouter::Dispatch(const xmpp::presence::v1::DispatchRequest& request,
                                            ReturnPath* back) {
  std::vector<const xmpp::presence::v1::DispatchRequest*> flows(1, &request);
  std::vector<ReturnPath*> backs(1, back);
  std::vector<absl::Status> done = co_await DispatchSequence(std::move(flows), std::move(backs));
  co_return done[0];
}

Task<std::vector<absl::Status>> PresenceRouter::DispatchSequence(
    std::vector<const xmpp::presence::v1::DispatchRequest*> flows,
    std::vector<ReturnPath*> backs) {
  std::vector<absl::Status> done(flows.size());
  // Everything the effects read comes in one round trip: the sessions of every recipient, and
  // the stored presences every snapshot copies.
  std::vector<Jid> recipients;
  std::vector<Jid> sources;
  absl::flat_hash_set<std::string> seen_recipients;
  absl::flat_hash_set<std::string> seen_sources;
  auto want = [](const std::string& jid, absl::flat_hash_set<std::string>* seen,
                 std::vector<Jid>* list) {
    absl::StatusOr<Jid> parsed = Jid::Parse(jid);
    if (!parsed.ok()) return;
    Jid bare = parsed->Bare();
    if (seen->insert(bare.BareString()).second) list->push_back(std::move(bare));
  };
  for (const xmpp::presence::v1::DispatchRequest* flow : flows) {
    for (const xmpp::presence::v1::Effect& effect : flow->effects()) {
      if (effect.has_presence_snapshot()) {
        want(effect.presence_snapshot().to_bare(), &seen_recipients, &recipients);
        want(effect.presence_snapshot().from_bare(), &seen_sources, &sources);
      } else if (effect.has_delivery()) {
        want(effect.delivery().to(), &seen_recipients, &recipients);
      }
    }
  }
  auto [lists, views] =
      co_await WhenBoth(directory_->ListMany(recipients), directory_->PresenceOf(sources));
  absl::Status read = !lists.ok() ? lists.status() : views.status();
  if (!read.ok()) {
    for (absl::Status& s : done) s = read;
    co_return done;
  }
  SessionCache cache;
  for (size_t i = 0; i < recipients.size() && i < lists->size(); ++i) {
    cache.try_emplace(recipients[i].BareString(), std::move((*lists)[i]));
  }
  absl::flat_hash_map<std::string, const PresenceView*> presences;
  for (size_t i = 0; i < sources.size() && i < views->size(); ++i) {
    presences.try_emplace(sources[i].BareString(), &(*views)[i]);
  }
  static const PresenceView kNoPresence;

  for (size_t f = 0; f < flows.size(); ++f) {
    Outbox out(this, f < backs.size() ? backs[f] : nullptr);
    absl::Status s;
    for (const xmpp::presence::v1::Effect& effect : flows[f]->effects()) {
      if (effect.has_presence_snapshot()) {
        const xmpp::presence::v1::PresenceSnapshot& snapshot = effect.presence_snapshot();
        absl::StatusOr<Jid> from = Jid::Parse(snapshot.from_bare());
        auto it = from.ok() ? presences.find(from->BareString()) : presences.end();
        s = co_await DeliverSnapshot(snapshot, it != presences.end() ? *it->second : kNoPresence,
                                     &out, &cache);
      } else if (effect.has_delivery()) {
        const xmpp::presence::v1::Delivery& d = effect.delivery();
        absl::StatusOr<Jid> to = Jid::Parse(d.to());
        if (!to.ok()) continue;
        s = co_await DeliverTo(*to, d.audience(), d.stanza().xml(), d.address_each_recipient(),
                               &out, &cache);
      }
      if (!s.ok()) break;
    }
    if (!s.ok()) {  // nothing of this flow leaves, nor anything after it
      done[f] = s;
      for (size_t later = f + 1; later < flows.size(); ++later) {
        done[later] =
            absl::UnavailableError("not run: an earlier flow of its sequence failed");
      }
      break;
    }
    co_await out.Flush();
  }
  co_return done;
}

}  // namespace xc
