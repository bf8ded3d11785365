#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "core/xml/xml_element.h"

namespace xc {

// Escapes character data (&, <, >) and attribute values (also ' and ").
std::string XmlEscapeText(absl::string_view text);
std::string XmlEscapeAttribute(absl::string_view value);

// Serializes `element` as it would appear inside a parent whose default namespace is
// `parent_ns`: an xmlns declaration is written only where the namespace changes. Stanzas for a
// client stream use the default kNsClient and so carry no xmlns of their own.
std::string SerializeXml(const XmlElement& element, absl::string_view parent_ns = kNsClient);
void AppendXml(const XmlElement& element, absl::string_view parent_ns, std::string* out);

// `xml` (one serialized element) with the root's attribute `name` set to `value` (added, or
// replacing the one there): readdressing a stanza for each recipient without parsing it again.
std::string SetRootAttribute(absl::string_view xml, absl::string_view name,
                             absl::string_view value);

// The opening tag alone ("<stream:stream ...>") is written by the gateway, not here.

}  // namespace xc
