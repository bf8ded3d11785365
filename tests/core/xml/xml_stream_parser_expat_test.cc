#include "core/xml/xml_stream_parser_expat.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/xml/xml_serializer.h"
#include "gtest/gtest.h"

namespace xc {
namespace {

constexpr char kHeader[] =
    "<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xml:lang='en' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

class Recorder : public XmlStreamHandler {
 public:
  void OnStreamStart(const XmlElement& root, absl::string_view prefix) override {
    roots.push_back(root);
    prefixes.emplace_back(prefix);
  }
  void OnStanza(XmlElement stanza) override {
    stanzas.push_back(std::move(stanza));
    if (pause_after_stanza && parser) parser->Pause();
  }
  void OnStreamEnd() override { ended = true; }

  std::vector<XmlElement> roots;
  std::vector<std::string> prefixes;
  std::vector<XmlElement> stanzas;
  bool ended = false;
  bool pause_after_stanza = false;
  XmlStreamParser* parser = nullptr;
};

class ParserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    parser_ = NewExpatXmlStreamParser(&rec_);
    rec_.parser = parser_.get();
  }
  XmlFault Feed(absl::string_view s) { return parser_->Feed(s); }

  Recorder rec_;
  std::unique_ptr<XmlStreamParser> parser_;
};

TEST_F(ParserTest, StreamHeaderAndStanzas) {
  ASSERT_EQ(Feed(kHeader), XmlFault::kNone);
  ASSERT_EQ(rec_.roots.size(), 1u);
  EXPECT_EQ(rec_.roots[0].name(), "stream");
  EXPECT_EQ(rec_.roots[0].ns(), kNsStream);
  EXPECT_EQ(rec_.prefixes[0], "stream");
  EXPECT_EQ(rec_.roots[0].Attribute("to"), "example.com");
  EXPECT_EQ(rec_.roots[0].Attribute("xml:lang"), "en");
  EXPECT_EQ(rec_.roots[0].Attribute("xmlns"), "jabber:client");
  ASSERT_EQ(Feed("<presence><show>away</show><x xmlns='urn:ext' a='1'><y/></x></presence>  \n"),
            XmlFault::kNone);
  ASSERT_EQ(rec_.stanzas.size(), 1u);
  const XmlElement& p = rec_.stanzas[0];
  EXPECT_TRUE(p.Is("presence", kNsClient));
  EXPECT_EQ(p.ChildText("show", kNsClient), "away");
  const XmlElement* x = p.FindChild("x", "urn:ext");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->Attribute("a"), "1");
  EXPECT_NE(x->FindChild("y", "urn:ext"), nullptr);
  ASSERT_EQ(Feed("</stream:stream>"), XmlFault::kNone);
  EXPECT_TRUE(rec_.ended);
}

TEST_F(ParserTest, ByteAtATimeGivesTheSameTree) {
  std::string input = std::string(kHeader) +
                      "<message to='a@b' type='chat'><body>h\xc3\xa9llo &amp; &lt;3</body></message>";
  for (char c : input) ASSERT_EQ(Feed(absl::string_view(&c, 1)), XmlFault::kNone);
  ASSERT_EQ(rec_.stanzas.size(), 1u);
  EXPECT_EQ(rec_.stanzas[0].ChildText("body"), "h\xc3\xa9llo & <3");
}

TEST_F(ParserTest, RoundTripKeepsUnknownChildrenAndAttributes) {
  const std::string stanza =
      "<presence type='subscribe' to='juliet@example.com' id='s1'><status>hi</status>"
      "<nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick>"
      "<x xmlns='urn:custom' k='v'><deep a='&apos;'>t</deep></x></presence>";
  ASSERT_EQ(Feed(std::string(kHeader) + stanza), XmlFault::kNone);
  ASSERT_EQ(rec_.stanzas.size(), 1u);
  EXPECT_EQ(SerializeXml(rec_.stanzas[0]), stanza);
}

struct FaultCase {
  const char* name;
  std::string input;
  XmlFault fault;
};

class ParserFaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(ParserFaultTest, Rejects) {
  Recorder rec;
  XmlLimits limits;
  limits.max_stanza_bytes = 4096;
  limits.max_depth = 8;
  limits.max_attributes = 8;
  std::unique_ptr<XmlStreamParser> parser = NewExpatXmlStreamParser(&rec, limits);
  XmlFault fault = parser->Feed(GetParam().input);
  EXPECT_EQ(fault, GetParam().fault) << XmlFaultName(fault) << " " << parser->fault_detail();
  // A faulted parser stays faulted and delivers nothing more.
  size_t before = rec.stanzas.size();
  EXPECT_EQ(parser->Feed("<message/>"), GetParam().fault);
  EXPECT_EQ(rec.stanzas.size(), before);
}

std::string BillionLaughs() {
  std::string s = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>";
  for (int i = 1; i < 10; ++i) {
    s += "<!ENTITY lol" + std::to_string(i) + " '";
    for (int j = 0; j < 10; ++j) s += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
    s += "'>";
  }
  return s + "]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>&lol9;";
}

INSTANTIATE_TEST_SUITE_P(
    Rfc6120Section11, ParserFaultTest,
    ::testing::Values(
        FaultCase{"unclosed", std::string(kHeader) + "<message><body></message>",
                  XmlFault::kNotWellFormed},
        FaultCase{"garbage", "<<<>>>", XmlFault::kNotWellFormed},
        FaultCase{"unbound_prefix", std::string(kHeader) + "<foo:bar/>", XmlFault::kNotWellFormed},
        FaultCase{"comment", std::string(kHeader) + "<!-- hi -->", XmlFault::kRestrictedXml},
        FaultCase{"comment_in_stanza", std::string(kHeader) + "<message><!-- x --></message>",
                  XmlFault::kRestrictedXml},
        FaultCase{"pi", std::string(kHeader) + "<?foo bar?>", XmlFault::kRestrictedXml},
        FaultCase{"doctype", "<!DOCTYPE stream><stream:stream/>", XmlFault::kRestrictedXml},
        FaultCase{"billion_laughs", BillionLaughs(), XmlFault::kRestrictedXml},
        FaultCase{"undefined_entity", std::string(kHeader) + "<message>&foo;</message>",
                  XmlFault::kRestrictedXml},
        FaultCase{"encoding", "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>",
                  XmlFault::kUnsupportedEncoding},
        FaultCase{"standalone_no", "<?xml version='1.0' standalone='no'?><a/>",
                  XmlFault::kRestrictedXml},
        FaultCase{"prefixed_client_stanza",
                  std::string(kHeader) + "<c:message xmlns:c='jabber:client'/>",
                  XmlFault::kBadNamespacePrefix},
        FaultCase{"too_big", std::string(kHeader) + "<message><body>" + std::string(5000, 'x') +
                                 "</body></message>",
                  XmlFault::kPolicyViolation},
        FaultCase{"too_big_unfinished", std::string(kHeader) + "<message><body>" +
                                            std::string(100000, 'x'),
                  XmlFault::kPolicyViolation},
        FaultCase{"too_deep", std::string(kHeader) + "<a><a><a><a><a><a><a><a><a><a>",
                  XmlFault::kPolicyViolation},
        FaultCase{"too_many_attributes",
                  std::string(kHeader) + "<a b='1' c='1' d='1' e='1' f='1' g='1' h='1' i='1' j='1'/>",
                  XmlFault::kPolicyViolation},
        FaultCase{"xml_namespace_element", std::string(kHeader) + "<xml:langiq/>",
                  XmlFault::kNotWellFormed},
        FaultCase{"bad_utf8", std::string(kHeader) + "<message>\xff\xfe</message>",
                  XmlFault::kNotWellFormed}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return std::string(info.param.name); });

TEST_F(ParserTest, StanzaJustUnderTheLimitPasses) {
  XmlLimits limits;
  limits.max_stanza_bytes = 4096;
  parser_->set_limits(limits);
  std::string big = "<message><body>" + std::string(4000, 'x') + "</body></message>";
  ASSERT_EQ(Feed(std::string(kHeader) + big + big), XmlFault::kNone);
  EXPECT_EQ(rec_.stanzas.size(), 2u);
}

TEST_F(ParserTest, PauseDropsTheRestUntilReset) {
  rec_.pause_after_stanza = true;
  ASSERT_EQ(Feed(std::string(kHeader) + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                        "\x16\x03\x01 binary tls bytes"),
            XmlFault::kNone);
  EXPECT_EQ(rec_.stanzas.size(), 1u);
  parser_->Reset();
  rec_.pause_after_stanza = false;
  ASSERT_EQ(Feed(kHeader), XmlFault::kNone);
  EXPECT_EQ(rec_.roots.size(), 2u);
  ASSERT_EQ(Feed("<iq type='get' id='1'/>"), XmlFault::kNone);
  EXPECT_EQ(rec_.stanzas.size(), 2u);
}

TEST_F(ParserTest, ResetAfterFaultStartsClean) {
  ASSERT_EQ(Feed("<<"), XmlFault::kNotWellFormed);
  parser_->Reset();
  ASSERT_EQ(Feed(kHeader), XmlFault::kNone);
}

// Between stanzas an idle stream gives its expat parser back and takes one again with the next
// bytes; nothing of the stream's state may be lost on the way: namespaces declared on the root,
// stanzas split across reads, keepalives, limits, the end of the stream.
TEST_F(ParserTest, IdleStreamsKeepTheirStateAcrossParserHandovers) {
  ASSERT_EQ(Feed("<stream:stream to='example.com' version='1.0' xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x'>"),
            XmlFault::kNone);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(Feed("<message to='a@b'><x:data n='1'/></message>"), XmlFault::kNone);
    ASSERT_EQ(Feed(" \n"), XmlFault::kNone);  // a keepalive
  }
  ASSERT_EQ(rec_.stanzas.size(), 50u);
  for (const XmlElement& m : rec_.stanzas) {
    EXPECT_EQ(m.ns(), kNsClient);
    ASSERT_NE(m.FindChild("data", "urn:x"), nullptr) << SerializeXml(m);
  }
  // One stanza over three reads, then two in one read.
  ASSERT_EQ(Feed("<message to='c@d'><bo"), XmlFault::kNone);
  ASSERT_EQ(Feed("dy>hel"), XmlFault::kNone);
  ASSERT_EQ(Feed("lo</body></message><presence/><iq type='get' id='1'/>"), XmlFault::kNone);
  ASSERT_EQ(rec_.stanzas.size(), 53u);
  EXPECT_EQ(rec_.stanzas[50].ChildText("body"), "hello");
  EXPECT_EQ(rec_.stanzas[52].name(), "iq");
  // A jabber:client stanza under a prefix the root declared is still refused after a handover.
  Recorder other;
  auto p2 = NewExpatXmlStreamParser(&other);
  ASSERT_EQ(p2->Feed("<stream:stream xmlns='jabber:client' xmlns:c='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"),
            XmlFault::kNone);
  ASSERT_EQ(p2->Feed("<presence/>"), XmlFault::kNone);
  EXPECT_EQ(p2->Feed("<c:message/>"), XmlFault::kBadNamespacePrefix);
  // The end of the stream after a handover.
  ASSERT_EQ(Feed("</stream:stream>"), XmlFault::kNone);
  EXPECT_TRUE(rec_.ended);
  EXPECT_EQ(rec_.roots.size(), 1u) << "the root is re-read silently";
}

// Streams with the same root share idle parsers: interleaved, each still gets exactly its own
// stanzas, a stanza split across reads stays with its stream, and faults stay with theirs.
TEST(ParserPoolTest, StreamsSharingIdleParsersKeepTheirOwnStanzas) {
  Recorder a, b, c;
  auto pa = NewExpatXmlStreamParser(&a);
  auto pb = NewExpatXmlStreamParser(&b);
  auto pc = NewExpatXmlStreamParser(&c);
  for (auto* p : {pa.get(), pb.get(), pc.get()}) ASSERT_EQ(p->Feed(kHeader), XmlFault::kNone);
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(pa->Feed(absl::StrCat("<message id='a", i, "'/>")), XmlFault::kNone);
    ASSERT_EQ(pb->Feed(absl::StrCat("<message id='b", i, "'><bo")), XmlFault::kNone);
    ASSERT_EQ(pc->Feed(absl::StrCat("<iq id='c", i, "'/>")), XmlFault::kNone);
    ASSERT_EQ(pb->Feed("dy>x</body></message>"), XmlFault::kNone);
  }
  ASSERT_EQ(a.stanzas.size(), 20u);
  ASSERT_EQ(b.stanzas.size(), 20u);
  ASSERT_EQ(c.stanzas.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(a.stanzas[i].Attribute("id"), absl::StrCat("a", i));
    EXPECT_EQ(b.stanzas[i].Attribute("id"), absl::StrCat("b", i));
    EXPECT_EQ(b.stanzas[i].ChildText("body"), "x");
    EXPECT_EQ(c.stanzas[i].name(), "iq");
  }
  EXPECT_EQ(pc->Feed("<iq><unclosed></iq>"), XmlFault::kNotWellFormed);
  EXPECT_EQ(pa->Feed("<presence/>"), XmlFault::kNone);
  EXPECT_EQ(a.stanzas.size(), 21u);
}

TEST_F(ParserTest, StanzaSizeLimitHoldsAcrossHandovers) {
  XmlLimits limits;
  limits.max_stanza_bytes = 1000;
  parser_->set_limits(limits);
  ASSERT_EQ(Feed(kHeader), XmlFault::kNone);
  ASSERT_EQ(Feed("<message><body>short</body></message>"), XmlFault::kNone);
  ASSERT_EQ(Feed("<message><body>"), XmlFault::kNone);
  XmlFault fault = XmlFault::kNone;
  for (int i = 0; i < 20 && fault == XmlFault::kNone; ++i) fault = Feed(std::string(100, 'a'));
  EXPECT_EQ(fault, XmlFault::kPolicyViolation);
}

}  // namespace
}  // namespace xc
