#include "core/xml/xml_fragment.h"

#include <memory>
#include <optional>

#include "core/xml/xml_stream_parser_expat.h"

namespace xc {
namespace {

// A jabber:client context that stays open: each call feeds one stanza and then a sentinel
// element, and expects exactly the stanza and the sentinel back. Anything else (a fault, no
// stanza, two stanzas, a stanza left open) and the context is thrown away and made again, so
// one bad input never affects the next. Per thread; stanzas cross services many times per
// second, and a parser per call cost more than the parse.
class FragmentParser final : public XmlStreamHandler {
 public:
  FragmentParser() { Open(); }

  absl::StatusOr<XmlElement> Parse(absl::string_view xml) {
    stanzas_.clear();
    XmlFault fault = parser_->Feed(xml);
    if (fault == XmlFault::kNone) fault = parser_->Feed(kSentinel);
    const bool clean = fault == XmlFault::kNone && stanzas_.size() == 2 &&
                       stanzas_[1].name() == "xc-sentinel" && stanzas_[1].ns() == kNsClient;
    if (!clean) {
      Open();
      return absl::InvalidArgumentError("not a single well-formed stanza");
    }
    return std::move(stanzas_[0]);
  }

  void OnStreamStart(const XmlElement&, absl::string_view) override {}
  void OnStanza(XmlElement e) override {
    if (stanzas_.size() < 3) stanzas_.push_back(std::move(e));
  }
  void OnStreamEnd() override {}

 private:
  static constexpr absl::string_view kSentinel = "<xc-sentinel/>";

  void Open() {
    XmlLimits limits;
    limits.max_stanza_bytes = 1 << 24;  // already bounded at the edge
    parser_ = NewExpatXmlStreamParser(this, limits);
    parser_->Feed("<s xmlns='jabber:client'>");
  }

  std::unique_ptr<XmlStreamParser> parser_;
  std::vector<XmlElement> stanzas_;
};

}  // namespace

absl::StatusOr<XmlElement> ParseStanzaXml(absl::string_view xml) {
  thread_local FragmentParser parser;
  return parser.Parse(xml);
}

}  // namespace xc
