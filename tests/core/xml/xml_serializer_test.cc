#include "core/xml/xml_serializer.h"

#include "gtest/gtest.h"

namespace xc {
namespace {

TEST(XmlSerializerTest, EscapesTextAndAttributes) {
  EXPECT_EQ(XmlEscapeText("a<b>&'\""), "a&lt;b&gt;&amp;'\"");
  EXPECT_EQ(XmlEscapeAttribute("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
}

TEST(XmlSerializerTest, WritesNamespacesOnlyWhereTheyChange) {
  XmlElement iq("iq", std::string(kNsClient));
  iq.SetAttribute("type", "get");
  iq.SetAttribute("id", "r1");
  XmlElement& query = iq.AddChild("query", "jabber:iq:roster");
  query.AddChild("item", "jabber:iq:roster").SetAttribute("jid", "a@b");
  EXPECT_EQ(SerializeXml(iq),
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>");
}

TEST(XmlSerializerTest, WritesTextXmlLangAndForeignAttributes) {
  XmlElement presence("presence", std::string(kNsClient));
  XmlElement& status = presence.AddChild("status", std::string(kNsClient));
  status.SetAttribute("xml:lang", "en");
  status.AddText("<away> & 'gone'");
  XmlElement& ext = presence.AddChild("x", "urn:x");
  ext.SetAttribute("attr", "v", "urn:other");
  EXPECT_EQ(SerializeXml(presence),
            "<presence><status xml:lang='en'>&lt;away&gt; &amp; 'gone'</status>"
            "<x xmlns='urn:x' xmlns:a0='urn:other' a0:attr='v'/></presence>");
}

TEST(XmlSerializerTest, AnotherParentNamespaceDeclaresOwn) {
  XmlElement e("features", std::string(kNsStream));
  EXPECT_EQ(SerializeXml(e), "<features xmlns='http://etherx.jabber.org/streams'/>");
}

TEST(XmlElementTest, FindAndEditChildren) {
  XmlElement e("presence", std::string(kNsClient));
  e.AddChild("show", std::string(kNsClient)).AddText("away");
  e.AddChild("status", std::string(kNsClient)).AddText("out");
  e.AddChild("status", std::string(kNsClient)).AddText("dehors");
  EXPECT_EQ(e.ChildText("show"), "away");
  EXPECT_EQ(e.Children("status").size(), 2u);
  EXPECT_EQ(e.ElementCount(), 3u);
  e.RemoveChildren("status", kNsClient);
  EXPECT_EQ(e.ElementCount(), 1u);
  XmlElement copy = e;
  EXPECT_EQ(copy, e);
  copy.FindMutableChild("show")->AddText("!");
  EXPECT_NE(copy, e);
  EXPECT_EQ(e.ChildText("show"), "away");  // deep copy
}

TEST(XmlSerializerTest, SetRootAttributeAddsOrReplacesOnTheRootOnly) {
  EXPECT_EQ(SetRootAttribute("<presence from='a@b/r'><show>away</show></presence>", "to", "c@d"),
            "<presence to='c@d' from='a@b/r'><show>away</show></presence>");
  EXPECT_EQ(SetRootAttribute("<presence/>", "to", "c@d"), "<presence to='c@d'/>");
  EXPECT_EQ(SetRootAttribute("<presence from='a' to='old'/>", "to", "new"),
            "<presence from='a' to='new'/>");
  EXPECT_EQ(SetRootAttribute("<message to=\"old\" id='1'><body to='x'/></message>", "to", "n"),
            "<message to='n' id='1'><body to='x'/></message>");
  // a child's attribute of the same name is not the root's
  EXPECT_EQ(SetRootAttribute("<iq id='1'><q to='x'/></iq>", "to", "y"),
            "<iq to='y' id='1'><q to='x'/></iq>");
  EXPECT_EQ(SetRootAttribute("<iq mytype='1'/>", "type", "a'b"), "<iq type='a&apos;b' mytype='1'/>");
}

}  // namespace
}  // namespace xc
