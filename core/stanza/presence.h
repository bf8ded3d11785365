#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/xml/xml_element.h"

namespace xc {

enum class PresenceType {
  kAvailable,  // no type attribute
  kUnavailable,
  kSubscribe,
  kSubscribed,
  kUnsubscribe,
  kUnsubscribed,
  kProbe,
  kError,
};

// "" → kAvailable. Any other unknown value (including "available") → nullopt (RFC 6121 §4.7.1).
std::optional<PresenceType> ParsePresenceType(absl::string_view type);
const char* PresenceTypeName(PresenceType type);  // "" for kAvailable
bool IsSubscriptionType(PresenceType type);

// A presence stanza as data (RFC 6121 §4.7). Children other than show/status/priority are kept
// verbatim in `extensions`, so a stored or forwarded presence keeps its payload.
struct Presence {
  std::string from;
  std::string to;
  std::string id;
  std::string lang;
  PresenceType type = PresenceType::kAvailable;
  std::string show;                                         // "", away, chat, dnd, xa
  std::vector<std::pair<std::string, std::string>> status;  // (xml:lang, text)
  std::optional<int> priority;                              // -128..127
  std::vector<XmlElement> extensions;

  int EffectivePriority() const { return priority.value_or(0); }
};

// Validates and reads a <presence/>. Errors (bad-request): unknown type, unknown <show/>, more
// than one <show/> or <priority/>, priority not an integer in -128..127.
absl::StatusOr<Presence> ParsePresence(const XmlElement& element);
XmlElement SerializePresence(const Presence& presence);

}  // namespace xc
