#include "core/stanza/presence.h"

#include "absl/strings/numbers.h"
#include "core/stanza/errors.h"
#include "core/stanza/stanza.h"

namespace xc {

std::optional<PresenceType> ParsePresenceType(absl::string_view type) {
  if (type.empty()) return PresenceType::kAvailable;
  if (type == "unavailable") return PresenceType::kUnavailable;
  if (type == "subscribe") return PresenceType::kSubscribe;
  if (type == "subscribed") return PresenceType::kSubscribed;
  if (type == "unsubscribe") return PresenceType::kUnsubscribe;
  if (type == "unsubscribed") return PresenceType::kUnsubscribed;
  if (type == "probe") return PresenceType::kProbe;
  if (type == "error") return PresenceType::kError;
  return std::nullopt;
}

const char* PresenceTypeName(PresenceType type) {
  switch (type) {
    case PresenceType::kAvailable:
      return "";
    case PresenceType::kUnavailable:
      return "unavailable";
    case PresenceType::kSubscribe:
      return "subscribe";
    case PresenceType::kSubscribed:
      return "subscribed";
    case PresenceType::kUnsubscribe:
      return "unsubscribe";
    case PresenceType::kUnsubscribed:
      return "unsubscribed";
    case PresenceType::kProbe:
      return "probe";
    case PresenceType::kError:
      return "error";
  }
  return "";
}

bool IsSubscriptionType(PresenceType type) {
  return type == PresenceType::kSubscribe || type == PresenceType::kSubscribed ||
         type == PresenceType::kUnsubscribe || type == PresenceType::kUnsubscribed;
}

absl::StatusOr<Presence> ParsePresence(const XmlElement& element) {
  Presence p;
  p.from = element.Attribute("from");
  p.to = element.Attribute("to");
  p.id = element.Attribute("id");
  p.lang = element.Attribute("xml:lang");
  std::optional<PresenceType> type = ParsePresenceType(element.Attribute("type"));
  if (!type) {
    return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "unknown presence type");
  }
  p.type = *type;
  bool seen_show = false;
  for (const XmlNode& n : element.nodes()) {
    if (!n.is_element()) continue;
    const XmlElement& child = n.element();
    if (child.ns() == kNsClient && child.name() == "show") {
      std::string show = child.Text();
      if (seen_show || !(show == "away" || show == "chat" || show == "dnd" || show == "xa")) {
        return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "invalid <show/>");
      }
      seen_show = true;
      p.show = show;
    } else if (child.ns() == kNsClient && child.name() == "status") {
      p.status.emplace_back(child.Attribute("xml:lang"), child.Text());
    } else if (child.ns() == kNsClient && child.name() == "priority") {
      int value = 0;
      if (p.priority.has_value() || !absl::SimpleAtoi(child.Text(), &value) || value < -128 ||
          value > 127) {
        return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "invalid <priority/>");
      }
      p.priority = value;
    } else {
      p.extensions.push_back(child);
    }
  }
  return p;
}

XmlElement SerializePresence(const Presence& p) {
  XmlElement e("presence", std::string(kNsClient));
  SetOrRemoveAttribute(&e, "from", p.from);
  SetOrRemoveAttribute(&e, "to", p.to);
  SetOrRemoveAttribute(&e, "type", PresenceTypeName(p.type));
  SetOrRemoveAttribute(&e, "id", p.id);
  SetOrRemoveAttribute(&e, "xml:lang", p.lang);
  if (!p.show.empty()) e.AddChild("show", std::string(kNsClient)).AddText(p.show);
  for (const auto& [lang, text] : p.status) {
    XmlElement& status = e.AddChild("status", std::string(kNsClient));
    if (!lang.empty()) status.SetAttribute("xml:lang", lang);
    status.AddText(text);
  }
  if (p.priority.has_value()) {
    e.AddChild("priority", std::string(kNsClient)).AddText(std::to_string(*p.priority));
  }
  for (const XmlElement& ext : p.extensions) e.AddChild(ext);
  return e;
}

}  // namespace xc
