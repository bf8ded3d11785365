// ParseStanzaXml keeps one parser context open per thread: every input must stand alone, and a
// bad one (broken, partial, two elements, text only) never leaks into the next.
#include "core/xml/xml_fragment.h"

#include <string>

#include "core/xml/xml_serializer.h"
#include "gtest/gtest.h"

namespace xc {
namespace {

TEST(XmlFragmentTest, EachCallParsesExactlyOneStanza) {
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<XmlElement> ok = ParseStanzaXml(
        "<message to='a@b' xmlns:x='urn:x'><body>hi &amp; bye</body><x:y/></message>");
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ok->ns(), kNsClient);
    EXPECT_EQ(ok->ChildText("body"), "hi & bye");
    EXPECT_NE(ok->FindChild("y", "urn:x"), nullptr);
    for (const char* bad : {"<message><body></message>", "<message>", "<a/><b/>", "just text",
                            "", "<iq/><unclosed", "</s>", "<x:y/>", "<!-- c --><a/>"}) {
      EXPECT_FALSE(ParseStanzaXml(bad).ok()) << bad;
      absl::StatusOr<XmlElement> after = ParseStanzaXml("<presence type='subscribe'/>");
      ASSERT_TRUE(after.ok()) << "after " << bad << ": " << after.status();
      EXPECT_EQ(after->Attribute("type"), "subscribe");
    }
    // A namespace declared in one input is not in scope for the next.
    EXPECT_TRUE(ParseStanzaXml("<a xmlns:p='urn:p'><p:b/></a>").ok());
    EXPECT_FALSE(ParseStanzaXml("<a><p:b/></a>").ok());
  }
}

TEST(XmlFragmentTest, RoundTripsWhatTheSerializerWrites) {
  XmlElement m("message", std::string(kNsClient));
  m.SetAttribute("to", "a@b/r");
  m.SetAttribute("xml:lang", "en");
  m.AddChild("body", std::string(kNsClient)).AddText("<3 'quoted' \"too\"");
  m.AddChild("x", "urn:ext").SetAttribute("attr", "v", "urn:other");
  absl::StatusOr<XmlElement> back = ParseStanzaXml(SerializeXml(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
}

}  // namespace
}  // namespace xc
