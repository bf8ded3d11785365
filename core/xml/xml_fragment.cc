#include "core/xml/xml_fragment.h"

#include <optional>

#include "core/xml/xml_stream_parser_expat.h"

namespace xc {
namespace {

struct OneStanza : XmlStreamHandler {
  void OnStreamStart(const XmlElement&, absl::string_view) override {}
  void OnStanza(XmlElement e) override {
    ++count;
    if (!stanza) stanza = std::move(e);
  }
  void OnStreamEnd() override {}
  std::optional<XmlElement> stanza;
  int count = 0;
};

}  // namespace

absl::StatusOr<XmlElement> ParseStanzaXml(absl::string_view xml) {
  OneStanza one;
  XmlLimits limits;
  limits.max_stanza_bytes = 1 << 24;  // already bounded at the edge
  std::unique_ptr<XmlStreamParser> parser = NewExpatXmlStreamParser(&one, limits);
  parser->Feed("<s xmlns='jabber:client'>");
  XmlFault fault = parser->Feed(xml);
  if (fault != XmlFault::kNone || one.count != 1 || !one.stanza) {
    return absl::InvalidArgumentError("not a single well-formed stanza");
  }
  return *std::move(one.stanza);
}

}  // namespace xc
