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

const std::vector<const char*>& StanzaTypeNames(StanzaKind kind) {
  static const auto* const kPresence = new std::vector<const char*>{
      "available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed",
      "probe", "error", "invalid"};
  static const auto* const kMessage =
      new std::vector<const char*>{"normal", "chat", "groupchat", "headline", "error", "invalid"};
  static const auto* const kIq =
      new std::vector<const char*>{"get", "set", "result", "error", "invalid"};
  static const auto* const kUnknown = new std::vector<const char*>{"none"};
  switch (kind) {
    case StanzaKind::kPresence:
      return *kPresence;
    case StanzaKind::kMessage:
      return *kMessage;
    case StanzaKind::kIq:
      return *kIq;
    case StanzaKind::kUnknown:
      break;
  }
  return *kUnknown;
}

int StanzaTypeIndex(StanzaKind kind, absl::string_view type) {
  if (kind == StanzaKind::kUnknown) return 0;
  const std::vector<const char*>& names = StanzaTypeNames(kind);
  if (type.empty()) {
    // An iq must carry a type; presence and message default to available / normal.
    return kind == StanzaKind::kIq ? static_cast<int>(names.size()) - 1 : 0;
  }
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    if (type == names[i] && !(i == 0 && kind == StanzaKind::kPresence)) return static_cast<int>(i);
  }
  return static_cast<int>(names.size()) - 1;
}

void PeekStanza(absl::string_view xml, StanzaKind* kind, absl::string_view* type) {
  *kind = StanzaKind::kUnknown;
  *type = absl::string_view();
  size_t lt = xml.find('<');
  if (lt == absl::string_view::npos) return;
  size_t gt = xml.find('>', lt);
  absl::string_view tag = xml.substr(lt + 1, gt == absl::string_view::npos ? xml.npos : gt - lt - 1);
  size_t name_end = tag.find_first_of(" \t\r\n/");
  absl::string_view name = tag.substr(0, name_end);
  if (name == "presence") {
    *kind = StanzaKind::kPresence;
  } else if (name == "message") {
    *kind = StanzaKind::kMessage;
  } else if (name == "iq") {
    *kind = StanzaKind::kIq;
  } else {
    return;
  }
  for (size_t at = tag.find("type="); at != absl::string_view::npos;
       at = tag.find("type=", at + 5)) {
    if (at == 0 || (tag[at - 1] != ' ' && tag[at - 1] != '\t' && tag[at - 1] != '\n' &&
                    tag[at - 1] != '\r')) {
      continue;  // e.g. xml:type or mytype
    }
    if (at + 5 >= tag.size()) return;
    char quote = tag[at + 5];
    if (quote != '\'' && quote != '"') return;
    size_t close = tag.find(quote, at + 6);
    if (close == absl::string_view::npos) return;
    *type = tag.substr(at + 6, close - at - 6);
    return;
  }
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
