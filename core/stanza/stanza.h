#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/xml/xml_element.h"

namespace xc {

enum class StanzaKind { kUnknown, kMessage, kPresence, kIq };

// message / presence / iq in jabber:client, or kUnknown.
StanzaKind KindOf(const XmlElement& element);
const char* StanzaKindName(StanzaKind kind);

bool IsErrorStanza(const XmlElement& stanza);

// Metric labels for a stanza's type attribute: a fixed set per kind (RFC 6120 §8.2.3, RFC 6121
// §4.7.1, §5.2.2), "available" / "normal" when absent, "invalid" for anything else, so input
// never becomes a label value. StanzaTypeIndex() < kMaxStanzaTypes indexes StanzaTypeNames().
constexpr int kMaxStanzaTypes = 9;
int StanzaTypeIndex(StanzaKind kind, absl::string_view type);
const std::vector<const char*>& StanzaTypeNames(StanzaKind kind);

// The kind and type attribute of a serialized stanza, read from its start tag only (for
// counting what is written without parsing it). Unknown shapes give kUnknown.
void PeekStanza(absl::string_view xml, StanzaKind* kind, absl::string_view* type);

enum class IqType { kGet, kSet, kResult, kError };
std::optional<IqType> ParseIqType(absl::string_view type);

// The single payload child of an IQ get/set. RFC 6120 §8.2.3: exactly one child, else
// bad-request.
absl::StatusOr<const XmlElement*> IqPayload(const XmlElement& iq);

// An empty IQ result answering `request` (to = its from, from = its to, same id).
XmlElement MakeIqResult(const XmlElement& request);

// Sets `name` to `value`, or removes it when `value` is empty.
void SetOrRemoveAttribute(XmlElement* element, absl::string_view name, absl::string_view value);

}  // namespace xc
