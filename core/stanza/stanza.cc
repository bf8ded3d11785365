#include "core/stanza/stanza.h"

#include "core/stanza/errors.h"

namespace xc {

StanzaKind KindOf(const XmlElement& element) {
  if (element.ns() != kNsClient) return StanzaKind::kUnknown;
  if (element.name() == "message") return StanzaKind::kMessage;
  if (element.name() == "presence") return StanzaKind::kPresence;
  if (element.name() == "iq") return StanzaKind::kIq;
  return StanzaKind::kUnknown;
}

const char* StanzaKindName(StanzaKind kind) {
  switch (kind) {
    case StanzaKind::kMessage:
      return "message";
    case StanzaKind::kPresence:
      return "presence";
    case StanzaKind::kIq:
      return "iq";
    case StanzaKind::kUnknown:
      break;
  }
  return "unknown";
}

bool IsErrorStanza(const XmlElement& stanza) { return stanza.Attribute("type") == "error"; }

std::optional<IqType> ParseIqType(absl::string_view type) {
  if (type == "get") return IqType::kGet;
  if (type == "set") return IqType::kSet;
  if (type == "result") return IqType::kResult;
  if (type == "error") return IqType::kError;
  return std::nullopt;
}

absl::StatusOr<const XmlElement*> IqPayload(const XmlElement& iq) {
  const XmlElement* payload = nullptr;
  for (const XmlNode& n : iq.nodes()) {
    if (!n.is_element()) continue;
    if (payload != nullptr) {
      return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "IQ has more than one child");
    }
    payload = &n.element();
  }
  if (payload == nullptr) {
    return StanzaErrorStatus(StanzaErrorCondition::kBadRequest, "IQ get/set has no child");
  }
  return payload;
}

XmlElement MakeIqResult(const XmlElement& request) {
  XmlElement result("iq", std::string(kNsClient));
  SetOrRemoveAttribute(&result, "from", request.Attribute("to"));
  SetOrRemoveAttribute(&result, "to", request.Attribute("from"));
  result.SetAttribute("type", "result");
  result.SetAttribute("id", request.Attribute("id"));
  return result;
}

void SetOrRemoveAttribute(XmlElement* element, absl::string_view name, absl::string_view value) {
  if (value.empty()) {
    element->RemoveAttribute(name);
  } else {
    element->SetAttribute(name, value);
  }
}

}  // namespace xc
