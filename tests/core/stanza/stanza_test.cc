#include <memory>
#include <string>
#include <vector>

#include "core/stanza/errors.h"
#include "core/stanza/namespaces.h"
#include "core/stanza/presence.h"
#include "core/stanza/roster.h"
#include "core/stanza/stanza.h"
#include "core/xml/xml_serializer.h"
#include "core/xml/xml_stream_parser_expat.h"
#include "gtest/gtest.h"

namespace xc {
namespace {

// Parses one stanza written as literal XML inside a jabber:client stream.
XmlElement ParseStanza(const std::string& xml) {
  struct One : XmlStreamHandler {
    void OnStreamStart(const XmlElement&, absl::string_view) override {}
    void OnStanza(XmlElement e) override { out.push_back(std::move(e)); }
    void OnStreamEnd() override {}
    std::vector<XmlElement> out;
  } one;
  auto parser = NewExpatXmlStreamParser(&one);
  XmlFault fault = parser->Feed(
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" +
      xml);
  EXPECT_EQ(fault, XmlFault::kNone) << parser->fault_detail();
  EXPECT_EQ(one.out.size(), 1u);
  return one.out.empty() ? XmlElement() : one.out[0];
}

TEST(StanzaTest, Kinds) {
  EXPECT_EQ(KindOf(ParseStanza("<message/>")), StanzaKind::kMessage);
  EXPECT_EQ(KindOf(ParseStanza("<presence/>")), StanzaKind::kPresence);
  EXPECT_EQ(KindOf(ParseStanza("<iq/>")), StanzaKind::kIq);
  EXPECT_EQ(KindOf(ParseStanza("<foo/>")), StanzaKind::kUnknown);
  EXPECT_EQ(KindOf(ParseStanza("<message xmlns='jabber:server'/>")), StanzaKind::kUnknown);
}

TEST(StanzaTest, IqPayloadNeedsExactlyOneChild) {
  EXPECT_TRUE(IqPayload(ParseStanza("<iq type='get' id='1'><query xmlns='a'/></iq>")).ok());
  absl::StatusOr<const XmlElement*> none = IqPayload(ParseStanza("<iq type='get' id='1'/>"));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(StanzaErrorConditionOf(none.status()), StanzaErrorCondition::kBadRequest);
  EXPECT_FALSE(IqPayload(ParseStanza("<iq type='get' id='1'><a xmlns='x'/><b xmlns='x'/></iq>")).ok());
  EXPECT_EQ(ParseIqType("set"), IqType::kSet);
  EXPECT_EQ(ParseIqType("foo"), std::nullopt);
}

TEST(StanzaTest, IqResultSwapsAddresses) {
  XmlElement result = MakeIqResult(ParseStanza("<iq from='a@b/c' to='b' type='get' id='x1'/>"));
  EXPECT_EQ(SerializeXml(result), "<iq from='b' to='a@b/c' type='result' id='x1'/>");
}

TEST(ErrorsTest, ErrorReplyMirrorsIdAndSwapsAddresses) {
  XmlElement req = ParseStanza("<iq from='romeo@d/o' to='juliet@d' type='get' id='q1'><x xmlns='u'/></iq>");
  XmlElement reply = MakeErrorReply(req, StanzaErrorCondition::kServiceUnavailable);
  EXPECT_EQ(SerializeXml(reply),
            "<iq from='juliet@d' to='romeo@d/o' type='error' id='q1'><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
  XmlElement to_server = MakeErrorReply(ParseStanza("<iq type='foo' id='2' from='a@d/r'/>"),
                                        StanzaErrorCondition::kBadRequest, "bad type", "d");
  EXPECT_EQ(to_server.Attribute("from"), "d");
  EXPECT_EQ(to_server.FindChild("error")->Attribute("type"), "modify");
  EXPECT_NE(to_server.FindChild("error")->FindChild("text", kNsStanzas), nullptr);
}

TEST(ErrorsTest, StatusCarriesCondition) {
  absl::Status s = StanzaErrorStatus(StanzaErrorCondition::kNotAcceptable, "empty group");
  EXPECT_EQ(StanzaErrorConditionOf(s), StanzaErrorCondition::kNotAcceptable);
  EXPECT_EQ(StanzaErrorConditionOf(absl::NotFoundError("x")), StanzaErrorCondition::kItemNotFound);
  EXPECT_EQ(StanzaErrorConditionOf(absl::UnavailableError("x")),
            StanzaErrorCondition::kServiceUnavailable);
  EXPECT_EQ(StanzaErrorConditionOf(absl::InternalError("x")),
            StanzaErrorCondition::kInternalServerError);
  for (StanzaErrorCondition c :
       {StanzaErrorCondition::kBadRequest, StanzaErrorCondition::kConflict,
        StanzaErrorCondition::kRemoteServerNotFound, StanzaErrorCondition::kUnexpectedRequest}) {
    EXPECT_EQ(ParseStanzaErrorCondition(StanzaErrorConditionName(c)), c);
  }
}

TEST(ErrorsTest, StreamErrorXml) {
  EXPECT_EQ(StreamErrorXml(StreamErrorCondition::kHostUnknown),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
  EXPECT_NE(StreamErrorXml(StreamErrorCondition::kPolicyViolation, "a<b").find("a&lt;b"),
            std::string::npos);
}

TEST(PresenceTest, ParsesAllFields) {
  absl::StatusOr<Presence> p = ParsePresence(ParseStanza(
      "<presence id='p1' xml:lang='en'><show>dnd</show><status>busy</status>"
      "<status xml:lang='fr'>occup\xc3\xa9</status><priority>-5</priority>"
      "<c xmlns='http://jabber.org/protocol/caps' ver='x'/></presence>"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->type, PresenceType::kAvailable);
  EXPECT_EQ(p->show, "dnd");
  ASSERT_EQ(p->status.size(), 2u);
  EXPECT_EQ(p->status[1].first, "fr");
  EXPECT_EQ(p->EffectivePriority(), -5);
  ASSERT_EQ(p->extensions.size(), 1u);
  EXPECT_EQ(p->extensions[0].ns(), "http://jabber.org/protocol/caps");
}

TEST(PresenceTest, RoundTrip) {
  std::string xml =
      "<presence to='juliet@d' type='subscribe' id='s1'><status>hi</status>"
      "<nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick></presence>";
  absl::StatusOr<Presence> p = ParsePresence(ParseStanza(xml));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(SerializeXml(SerializePresence(*p)), xml);
}

class BadPresenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BadPresenceTest, IsBadRequest) {
  absl::StatusOr<Presence> p = ParsePresence(ParseStanza(GetParam()));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(StanzaErrorConditionOf(p.status()), StanzaErrorCondition::kBadRequest);
}

INSTANTIATE_TEST_SUITE_P(Rfc6121Section4_7, BadPresenceTest,
                         ::testing::Values("<presence type='available'/>", "<presence type='foo'/>",
                                           "<presence><show>busy</show></presence>",
                                           "<presence><show>away</show><show>xa</show></presence>",
                                           "<presence><priority>128</priority></presence>",
                                           "<presence><priority>x</priority></presence>",
                                           "<presence><priority>1</priority><priority>2</priority></presence>"));

TEST(PresenceTest, SubscriptionTypes) {
  EXPECT_TRUE(IsSubscriptionType(PresenceType::kSubscribe));
  EXPECT_TRUE(IsSubscriptionType(PresenceType::kUnsubscribed));
  EXPECT_FALSE(IsSubscriptionType(PresenceType::kProbe));
  EXPECT_FALSE(IsSubscriptionType(PresenceType::kAvailable));
}

TEST(RosterTest, ParsesItems) {
  XmlElement iq = ParseStanza(
      "<iq type='set' id='r1'><query xmlns='jabber:iq:roster' ver='7'>"
      "<item jid='Juliet@D.' name='J' subscription='both' ask='subscribe' approved='true'>"
      "<group>Friends</group><group>Lovers</group></item></query></iq>");
  absl::StatusOr<RosterQuery> q = ParseRosterQuery(*iq.FindChild("query", kNsRoster));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->ver, "7");
  ASSERT_EQ(q->items.size(), 1u);
  const RosterItem& item = q->items[0];
  EXPECT_EQ(item.jid.ToString(), "juliet@d");
  EXPECT_EQ(item.name, "J");
  EXPECT_EQ(item.subscription, Subscription::kBoth);
  EXPECT_TRUE(item.ask);
  EXPECT_TRUE(item.approved);
  EXPECT_EQ(item.groups, (std::vector<std::string>{"Friends", "Lovers"}));
}

TEST(RosterTest, MalformedJidAndUnknownSubscription) {
  XmlElement bad_jid = ParseStanza("<query xmlns='jabber:iq:roster'><item jid='juliet@'/></query>");
  absl::StatusOr<RosterQuery> q = ParseRosterQuery(bad_jid);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(StanzaErrorConditionOf(q.status()), StanzaErrorCondition::kJidMalformed);
  XmlElement bad_sub =
      ParseStanza("<query xmlns='jabber:iq:roster'><item jid='a@d' subscription='x'/></query>");
  EXPECT_EQ(StanzaErrorConditionOf(ParseRosterQuery(bad_sub).status()),
            StanzaErrorCondition::kBadRequest);
}

TEST(RosterTest, SerializesLikeTheRfcExamples) {
  RosterQuery q;
  q.ver = "ver11";
  RosterItem item;
  item.jid = *Jid::Parse("romeo@example.net");
  item.name = "Romeo";
  item.subscription = Subscription::kNone;
  item.ask = true;
  item.groups = {"Friends"};
  q.items.push_back(item);
  EXPECT_EQ(SerializeXml(SerializeRosterQuery(q)),
            "<query xmlns='jabber:iq:roster' ver='ver11'><item jid='romeo@example.net' "
            "name='Romeo' subscription='none' ask='subscribe'><group>Friends</group></item></query>");
  RosterQuery empty;
  empty.ver = "1";
  EXPECT_EQ(SerializeXml(SerializeRosterQuery(empty)), "<query xmlns='jabber:iq:roster' ver='1'/>");
}

TEST(StanzaLabelsTest, TypesMapToAFixedSetPerKind) {
  auto name = [](StanzaKind kind, absl::string_view type) {
    return std::string(StanzaTypeNames(kind)[StanzaTypeIndex(kind, type)]);
  };
  EXPECT_EQ(name(StanzaKind::kPresence, ""), "available");
  EXPECT_EQ(name(StanzaKind::kPresence, "available"), "invalid");  // not a valid type value
  EXPECT_EQ(name(StanzaKind::kPresence, "subscribed"), "subscribed");
  EXPECT_EQ(name(StanzaKind::kPresence, "probe"), "probe");
  EXPECT_EQ(name(StanzaKind::kPresence, "alice@example.com"), "invalid");
  EXPECT_EQ(name(StanzaKind::kMessage, ""), "normal");
  EXPECT_EQ(name(StanzaKind::kMessage, "normal"), "normal");
  EXPECT_EQ(name(StanzaKind::kMessage, "chat"), "chat");
  EXPECT_EQ(name(StanzaKind::kIq, ""), "invalid");
  EXPECT_EQ(name(StanzaKind::kIq, "get"), "get");
  EXPECT_EQ(name(StanzaKind::kIq, "result"), "result");
  EXPECT_EQ(name(StanzaKind::kUnknown, "x"), "none");
  for (StanzaKind k : {StanzaKind::kPresence, StanzaKind::kMessage, StanzaKind::kIq}) {
    EXPECT_LE(StanzaTypeNames(k).size(), static_cast<size_t>(kMaxStanzaTypes));
  }
}

TEST(StanzaLabelsTest, PeekReadsKindAndTypeFromTheStartTag) {
  StanzaKind kind;
  absl::string_view type;
  PeekStanza("<presence from='a@b/c' type='subscribe' to='d@e'><status>x type='y'</status>",
             &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kPresence);
  EXPECT_EQ(type, "subscribe");
  PeekStanza("<presence from='a@b/c'><show>away</show></presence>", &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kPresence);
  EXPECT_EQ(type, "");
  PeekStanza("<iq xmlns:x='u' x:type='a' type=\"set\" id='1'/>", &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kIq);
  EXPECT_EQ(type, "set");
  PeekStanza("<message mytype='x' to='a@b'/>", &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kMessage);
  EXPECT_EQ(type, "");
  PeekStanza("<stream:error/>", &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kUnknown);
  PeekStanza("<iq type='", &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kIq);
  EXPECT_EQ(type, "");
  PeekStanza("", &kind, &type);
  EXPECT_EQ(kind, StanzaKind::kUnknown);
}

}  // namespace
}  // namespace xc
