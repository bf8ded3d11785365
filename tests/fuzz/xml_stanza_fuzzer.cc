// libFuzzer target: arbitrary bytes through the stream parser (in chunks chosen by the input),
// every stanza through the stanza parsers, and a serialize → parse round trip that must be exact.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/stanza/presence.h"
#include "core/stanza/roster.h"
#include "core/stanza/stanza.h"
#include "core/stanza/namespaces.h"
#include "core/xml/xml_serializer.h"
#include "core/xml/xml_stream_parser_expat.h"

namespace {

struct Collector : xc::XmlStreamHandler {
  void OnStreamStart(const xc::XmlElement&, absl::string_view) override {}
  void OnStanza(xc::XmlElement e) override { stanzas.push_back(std::move(e)); }
  void OnStreamEnd() override {}
  std::vector<xc::XmlElement> stanzas;
};

constexpr char kHeader[] =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

void CheckRoundTrip(const xc::XmlElement& stanza) {
  Collector again;
  auto parser = xc::NewExpatXmlStreamParser(&again);
  std::string wire = std::string(kHeader) + xc::SerializeXml(stanza);
  if (parser->Feed(wire) != xc::XmlFault::kNone || again.stanzas.size() != 1 ||
      !(again.stanzas[0] == stanza)) {
    // Text nodes split by the first parse merge on the second; compare serialized forms too.
    if (again.stanzas.size() == 1 && xc::SerializeXml(again.stanzas[0]) == xc::SerializeXml(stanza)) {
      return;
    }
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + data[0] % 64;
  absl::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Collector collector;
  xc::XmlLimits limits;
  limits.max_stanza_bytes = 16 * 1024;
  auto parser = xc::NewExpatXmlStreamParser(&collector, limits);
  parser->Feed(kHeader);
  while (!input.empty()) {
    absl::string_view piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    if (parser->Feed(piece) != xc::XmlFault::kNone) break;
  }
  for (const xc::XmlElement& stanza : collector.stanzas) {
    (void)xc::KindOf(stanza);
    (void)xc::ParsePresence(stanza);
    if (const xc::XmlElement* q = stanza.FindChild("query", xc::kNsRoster)) {
      (void)xc::ParseRosterQuery(*q);
    }
    (void)xc::IqPayload(stanza);
    CheckRoundTrip(stanza);
  }
  return 0;
}
