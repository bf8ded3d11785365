#include "core/stanza/roster.h"

#include "absl/strings/str_cat.h"
#include "core/stanza/errors.h"
#include "core/stanza/namespaces.h"

namespace xc {

const char* SubscriptionName(Subscription subscription) {
  switch (subscription) {
    case Subscription::kNone:
      return "none";
    case Subscription::kTo:
      return "to";
    case Subscription::kFrom:
      return "from";
    case Subscription::kBoth:
      return "both";
    case Subscription::kRemove:
      return "remove";
  }
  return "none";
}

std::optional<Subscription> ParseSubscription(absl::string_view name) {
  if (name.empty() || name == "none") return Subscription::kNone;
  if (name == "to") return Subscription::kTo;
  if (name == "from") return Subscription::kFrom;
  if (name == "both") return Subscription::kBoth;
  if (name == "remove") return Subscription::kRemove;
  return std::nullopt;
}

absl::StatusOr<RosterQuery> ParseRosterQuery(const XmlElement& query) {
  RosterQuery out;
  if (const std::string* ver = query.FindAttribute("ver")) out.ver = *ver;
  for (const XmlElement* item : query.Children("item", kNsRoster)) {
    RosterItem ri;
    absl::StatusOr<Jid> jid = Jid::Parse(item->Attribute("jid"));
    if (!jid.ok()) {
      return StanzaErrorStatus(StanzaErrorCondition::kJidMalformed,
                               absl::StrCat("item jid: ", jid.status().message()));
    }
    ri.jid = *std::move(jid);
    ri.name = item->Attribute("name");
    std::optional<Subscription> sub = ParseSubscription(item->Attribute("subscription"));
    if (!sub) {
      return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "unknown subscription value");
    }
    ri.subscription = *sub;
    ri.ask = item->Attribute("ask") == "subscribe";
    ri.approved = item->Attribute("approved") == "true";
    for (const XmlElement* group : item->Children("group", kNsRoster)) {
      ri.groups.push_back(group->Text());
    }
    out.items.push_back(std::move(ri));
  }
  return out;
}

XmlElement SerializeRosterItem(const RosterItem& item) {
  XmlElement e("item", std::string(kNsRoster));
  e.SetAttribute("jid", item.jid.ToString());
  if (!item.name.empty()) e.SetAttribute("name", item.name);
  e.SetAttribute("subscription", SubscriptionName(item.subscription));
  if (item.ask) e.SetAttribute("ask", "subscribe");
  if (item.approved) e.SetAttribute("approved", "true");
  for (const std::string& group : item.groups) {
    e.AddChild("group", std::string(kNsRoster)).AddText(group);
  }
  return e;
}

XmlElement SerializeRosterQuery(const RosterQuery& query) {
  XmlElement e("query", std::string(kNsRoster));
  if (query.ver.has_value()) e.SetAttribute("ver", *query.ver);
  for (const RosterItem& item : query.items) e.AddChild(SerializeRosterItem(item));
  return e;
}

}  // namespace xc
