#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/xml/xml_element.h"

namespace xc {

// Parses one serialized stanza (as carried between services: jabber:client is the default
// namespace) back into an element tree. InvalidArgument when it is not exactly one element.
absl::StatusOr<XmlElement> ParseStanzaXml(absl::string_view xml);

}  // namespace xc
