// Broadcast, probe, directed-presence and routing logic of the presence router (RFC 6121 §4, §8)
// against an in-memory session directory and Redis, with a deliverer that records every write.
#include "services/presence/presence_router.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/base/clock.h"
#include "core/store/keys.h"
#include "core/xml/xml_fragment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/xmpp/store/v1/records.pb.h"
#include "services/presence/gateway_reaper.h"
#include "tests/fakes/fake_redis_client.h"
#include "tests/fakes/fake_session_directory.h"

namespace xc {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class RecordingDeliverer final : public GatewayDeliverer {
 public:
  Task<absl::StatusOr<std::vector<std::string>>> Deliver(
      const std::string& gateway, xmpp::gateway::v1::DeliverRequest request) override {
    co_return Record(gateway, request);
  }
  absl::StatusOr<std::vector<std::string>> Record(
      const std::string& gateway, const xmpp::gateway::v1::DeliverRequest& request) {
    absl::MutexLock lock(&mu_);
    if (gateway == unreachable_) return absl::UnavailableError("connection refused");
    for (const auto& item : request.items()) {
      absl::StatusOr<XmlElement> x = ParseStanzaXml(item.xml());
      std::string type = x->Attribute("type");
      writes_.push_back(absl::StrCat(item.full_jid(), " <- ", x->name(),
                                     type.empty() ? "" : " " + type, " from ",
                                     x->Attribute("from")));
      xml_[item.full_jid()].push_back(*x);
    }
    return std::vector<std::string>{};
  }
  void SetUnreachable(const std::string& gateway) {
    absl::MutexLock lock(&mu_);
    unreachable_ = gateway;
  }
  std::vector<std::string> Take() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    out.swap(writes_);
    xml_.clear();
    return out;
  }
  std::vector<XmlElement> XmlFor(const std::string& full) {
    absl::MutexLock lock(&mu_);
    return xml_[full];
  }

 private:
  absl::Mutex mu_;
  std::string unreachable_;
  std::vector<std::string> writes_;
  std::map<std::string, std::vector<XmlElement>> xml_;
};

class PresenceRouterTest : public ::testing::Test {
 protected:
  PresenceRouterTest() : router_(&directory_, &async_redis_, &deliverer_, &clock_) {}

  // Everything here is in memory and answers at once; the loop runs only if a task waits.
  template <typename T>
  T Sync(Task<T> task) {
    return RunToCompletion(&loop_, std::move(task));
  }

  Jid J(const std::string& s) { return *Jid::Parse(s); }

  // user's roster entry for contact: "to", "from", "both" or "none".
  void Roster(const std::string& user, const std::string& contact, const std::string& sub) {
    xmpp::store::v1::RosterItemRecord r;
    r.set_in_roster(true);
    r.set_to(sub == "to" || sub == "both");
    r.set_from(sub == "from" || sub == "both");
    ASSERT_TRUE(redis_.Command({"HSET", keys::Roster(user), contact, r.SerializeAsString()}).ok());
  }

  // Both sides of a subscription, consistently: sub is user's view of contact.
  void Pair(const std::string& user, const std::string& contact, const std::string& sub) {
    Roster(user, contact, sub);
    Roster(contact, user, sub == "to" ? "from" : sub == "from" ? "to" : sub);
  }

  Jid Online(const std::string& full, bool available = true, bool interested = true,
             const std::string& extra = "") {
    Jid jid = J(full);
    absl::StatusOr<std::string> bound = Sync(router_.BindSession("gw1", jid.Bare(), jid.resource()));
    EXPECT_TRUE(bound.ok());
    if (interested) {
      EXPECT_TRUE(Sync(router_.SetInterested(jid)).ok());
    }
    if (available) {
      Presence(jid, absl::StrCat("<presence id='p-", full, "'>", extra, "</presence>"));
    }
    deliverer_.Take();
    return jid;
  }

  std::vector<XmlElement> Presence(const Jid& session, const std::string& xml) {
    absl::StatusOr<XmlElement> x = ParseStanzaXml(xml);
    EXPECT_TRUE(x.ok());
    x->SetAttribute("from", session.ToString());
    absl::StatusOr<std::vector<XmlElement>> replies = Sync(router_.HandlePresence(session, *x));
    EXPECT_TRUE(replies.ok()) << replies.status();
    return replies.ok() ? *replies : std::vector<XmlElement>{};
  }

  FakeClock clock_;
  EventLoop loop_;
  testing::FakeSessionDirectory directory_;
  testing::FakeRedisClient redis_;
  testing::ImmediateAsyncRedisClient async_redis_{&redis_, &loop_};
  RecordingDeliverer deliverer_;
  PresenceRouter router_;
};

TEST_F(PresenceRouterTest, InitialPresenceGoesToFromAndBothAndOwnResources) {  // checklist 48
  Pair("u@d", "from@d", "from");
  Pair("u@d", "both@d", "both");
  Pair("u@d", "to@d", "to");
  Pair("u@d", "none@d", "none");
  for (const char* c : {"from@d/r", "both@d/r", "to@d/r", "none@d/r"}) Online(c);
  Online("u@d/other");
  Jid me = Online("u@d/me", /*available=*/false);
  Presence(me, "<presence/>");
  EXPECT_THAT(deliverer_.Take(),
              UnorderedElementsAre("from@d/r <- presence from u@d/me",
                                   "both@d/r <- presence from u@d/me",
                                   "u@d/other <- presence from u@d/me",
                                   "u@d/me <- presence from u@d/me",
                                   // probe answers (to/both), from their full JIDs (A10)
                                   "u@d/me <- presence from both@d/r",
                                   "u@d/me <- presence from to@d/r",
                                   // the other resource's presence
                                   "u@d/me <- presence from u@d/other"));
}

TEST_F(PresenceRouterTest, ProbeAnswersKeepOriginalXmlAndId) {  // checklist 49
  Roster("u@d", "c@d", "to");
  Roster("c@d", "u@d", "from");
  Online("c@d/r", true, true, "<show>dnd</show><x xmlns='urn:x'/>");
  Jid me = Online("u@d/me", false);
  Presence(me, "<presence/>");
  std::vector<XmlElement> got = deliverer_.XmlFor("u@d/me");
  bool found = false;
  for (const XmlElement& x : got) {
    if (x.Attribute("from") != "c@d/r") continue;
    found = true;
    EXPECT_EQ(x.Attribute("id"), "p-c@d/r");
    EXPECT_EQ(x.ChildText("show"), "dnd");
    EXPECT_NE(x.FindChild("x", "urn:x"), nullptr);
  }
  EXPECT_TRUE(found);
}

TEST_F(PresenceRouterTest, LaterPresenceAndUnavailableBroadcast) {  // checklist 50, 51
  Pair("u@d", "c@d", "both");
  Online("c@d/r");
  Jid me = Online("u@d/me");
  Presence(me, "<presence><show>away</show></presence>");
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("c@d/r <- presence from u@d/me",
                                                      "u@d/me <- presence from u@d/me"));
  Presence(me, "<presence type='unavailable'><status>bye</status></presence>");
  std::vector<XmlElement> got = deliverer_.XmlFor("c@d/r");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].Attribute("type"), "unavailable");
  EXPECT_EQ(got[0].ChildText("status"), "bye");
  deliverer_.Take();
  // Available again is initial again (checklist 52): probes run once more.
  Presence(me, "<presence/>");
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("c@d/r <- presence from u@d/me",
                                                      "u@d/me <- presence from u@d/me",
                                                      "u@d/me <- presence from c@d/r"));
}

TEST_F(PresenceRouterTest, DisconnectGeneratesUnavailable) {  // checklist 51
  Roster("u@d", "c@d", "from");
  Online("c@d/r");
  Jid me = Online("u@d/me");
  ASSERT_TRUE(Sync(router_.EndSession(me)).ok());
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/r <- presence unavailable from u@d/me"));
  EXPECT_THAT(*Sync(directory_.List(J("u@d"))), IsEmpty());
}

// Issue 5: a gateway that stays unreachable through the deliverer's retries is treated as gone:
// fenced (its heartbeat no longer counts), then its sessions are reaped with unavailable.
TEST_F(PresenceRouterTest, UnreachableGatewayIsFencedAndItsSessionsReaped) {
  Pair("u@d", "c@d", "both");
  Online("c@d/r");
  ASSERT_TRUE(redis_.Command({"HSET", keys::Gateways(), "gw2", "127.0.0.1:1"}).ok());
  ASSERT_TRUE(redis_.Command({"SET", keys::GatewayAlive("gw2"), "1"}).ok());
  Jid me = J("u@d/me");
  ASSERT_TRUE(Sync(router_.BindSession("gw2", me.Bare(), "me")).ok());
  deliverer_.SetUnreachable("gw2");
  Presence(me, "<presence/>");
  // The contact on the healthy gateway still got the presence; gw2 is fenced.
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/r <- presence from u@d/me"));
  EXPECT_EQ(redis_.Command({"EXISTS", keys::GatewayFenced("gw2")})->integer, 1);
  EXPECT_EQ(redis_.Command({"EXISTS", keys::GatewayAlive("gw2")})->integer, 0);

  absl::StatusOr<int> ended = Sync(ReapDeadGateways(&async_redis_, &directory_, &router_, "test"));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(*ended, 1);
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/r <- presence unavailable from u@d/me"));
  EXPECT_THAT(*Sync(directory_.List(J("u@d"))), IsEmpty());
  EXPECT_TRUE(redis_.Command({"HGET", keys::Gateways(), "gw2"})->is_nil());
}

TEST_F(PresenceRouterTest, FailuresOtherThanUnreachableDoNotFence) {
  Roster("u@d", "c@d", "from");
  Online("c@d/r");
  deliverer_.SetUnreachable("none");
  ASSERT_TRUE(Sync(router_.EndSession(J("c@d/r"))).ok());
  EXPECT_EQ(redis_.Command({"EXISTS", keys::GatewayFenced("gw1")})->integer, 0);
}

TEST_F(PresenceRouterTest, DirectedPresenceIsRememberedUntilUnavailable) {  // checklist 53
  Roster("u@d", "sub@d", "from");
  Online("x@d/r");
  Online("y@d/r");
  Online("sub@d/r");
  Jid me = Online("u@d/me");
  Presence(me, "<presence to='x@d'/>");
  Presence(me, "<presence to='y@d/r'/>");
  Presence(me, "<presence to='sub@d'/>");  // a subscriber: no list entry
  deliverer_.Take();
  // A later broadcast does not reach x or y.
  Presence(me, "<presence><show>away</show></presence>");
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("sub@d/r <- presence from u@d/me",
                                                      "u@d/me <- presence from u@d/me"));
  // y already got a directed unavailable: it is off the list.
  Presence(me, "<presence type='unavailable' to='y@d/r'/>");
  deliverer_.Take();
  ASSERT_TRUE(Sync(router_.EndSession(me)).ok());
  EXPECT_THAT(deliverer_.Take(),
              UnorderedElementsAre("sub@d/r <- presence unavailable from u@d/me",
                                   "x@d/r <- presence unavailable from u@d/me"));
}

TEST_F(PresenceRouterTest, ProbesRevealNothingToNonSubscribers) {  // checklist 56
  Online("c@d/r");
  Jid me = Online("u@d/me");
  Presence(me, "<presence type='probe' to='c@d' id='pr1'/>");
  EXPECT_THAT(deliverer_.Take(), ElementsAre("u@d/me <- presence unsubscribed from c@d"));
}

TEST_F(PresenceRouterTest, ProbeOfOfflineSubscribedContactAnswersUnavailableWithDelay) {
  Roster("c@d", "u@d", "from");
  Jid c = Online("c@d/r");
  ASSERT_TRUE(Sync(router_.EndSession(c)).ok());
  Jid me = Online("u@d/me");
  Presence(me, "<presence type='probe' to='c@d' id='pr2'/>");
  std::vector<XmlElement> got = deliverer_.XmlFor("u@d/me");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].Attribute("type"), "unavailable");
  EXPECT_EQ(got[0].Attribute("id"), "pr2");
  EXPECT_NE(got[0].FindChild("delay", "urn:xmpp:delay"), nullptr);
}

TEST_F(PresenceRouterTest, PresenceToBareJidWithNoAvailableResourceIsDropped) {  // checklist 54
  Online("c@d/quiet", /*available=*/false);
  Jid me = Online("u@d/me");
  Presence(me, "<presence to='c@d'/>");
  EXPECT_THAT(deliverer_.Take(), IsEmpty());
  Online("c@d/neg", true, true, "<priority>-1</priority>");
  Online("c@d/pos");
  Presence(me, "<presence to='c@d'/>");
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("c@d/neg <- presence from u@d/me",
                                                      "c@d/pos <- presence from u@d/me"));
}

TEST_F(PresenceRouterTest, ErrorPresenceOnlyToConnectedFullJidNeverAnswered) {  // checklist 57
  Online("c@d/r");
  Jid me = Online("u@d/me");
  EXPECT_THAT(Presence(me, "<presence type='error' to='c@d'/>"), IsEmpty());
  EXPECT_THAT(Presence(me, "<presence type='error' to='c@d/gone'/>"), IsEmpty());
  EXPECT_THAT(deliverer_.Take(), IsEmpty());
  Presence(me, "<presence type='error' to='c@d/r'/>");
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/r <- presence error from u@d/me"));
}

TEST_F(PresenceRouterTest, BadPresenceTypeIsBadRequest) {  // checklist 55
  Jid me = Online("u@d/me");
  std::vector<XmlElement> replies = Presence(me, "<presence type='available'/>");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_NE(replies[0].FindChild("error")->FindChild("bad-request"), nullptr);
}

TEST_F(PresenceRouterTest, MessagesGoToHighestNonNegativePriority) {  // RFC 6121 §8.5.2.1.1
  Online("c@d/low", true, true, "<priority>1</priority>");
  Online("c@d/high1", true, true, "<priority>5</priority>");
  Online("c@d/high2", true, true, "<priority>5</priority>");
  Online("c@d/neg", true, true, "<priority>-5</priority>");
  Jid me = Online("u@d/me");
  absl::StatusOr<std::vector<XmlElement>> replies =
      Sync(router_.RouteStanza(me, *ParseStanzaXml("<message to='c@d' type='chat'><body>x</body></message>")));
  ASSERT_TRUE(replies.ok());
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("c@d/high1 <- message chat from u@d/me",
                                                      "c@d/high2 <- message chat from u@d/me"));
  // Full JID: exactly that resource, even with negative priority.
  (void)Sync(router_.RouteStanza(me, *ParseStanzaXml("<message to='c@d/neg'><body>x</body></message>")));
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/neg <- message from u@d/me"));
}

TEST_F(PresenceRouterTest, HeadlinesGoToEveryNonNegativeResource) {  // RFC 6121 §8.5.2.1.1
  Online("c@d/low", true, true, "<priority>1</priority>");
  Online("c@d/high", true, true, "<priority>5</priority>");
  Online("c@d/neg", true, true, "<priority>-5</priority>");
  Online("c@d/connected", /*available=*/false, true);
  Jid me = Online("u@d/me");
  absl::StatusOr<std::vector<XmlElement>> replies = Sync(router_.RouteStanza(
      me, *ParseStanzaXml("<message to='c@d' type='headline'><body>x</body></message>")));
  ASSERT_TRUE(replies.ok());
  EXPECT_TRUE(replies->empty());
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("c@d/low <- message headline from u@d/me",
                                                      "c@d/high <- message headline from u@d/me"));
  // To a full JID that is not there (§8.5.3.2.1): as if to the bare JID.
  (void)Sync(router_.RouteStanza(
      me, *ParseStanzaXml("<message to='c@d/gone' type='headline'><body>x</body></message>")));
  EXPECT_THAT(deliverer_.Take(), UnorderedElementsAre("c@d/low <- message headline from u@d/me",
                                                      "c@d/high <- message headline from u@d/me"));
}

TEST_F(PresenceRouterTest, AHeadlineNobodyCanTakeIsDroppedSilently) {  // RFC 6121 §8.5.2.2
  Online("c@d/neg", true, true, "<priority>-5</priority>");
  Jid me = Online("u@d/me");
  absl::StatusOr<std::vector<XmlElement>> replies = Sync(router_.RouteStanza(
      me, *ParseStanzaXml("<message to='c@d' type='headline' id='h1'><body>x</body></message>")));
  ASSERT_TRUE(replies.ok());
  EXPECT_TRUE(replies->empty()) << "no error for a headline";
  EXPECT_THAT(deliverer_.Take(), IsEmpty());
}

TEST_F(PresenceRouterTest, MessageToOnlyNegativePriorityOrOfflineIsAnError) {
  Online("c@d/neg", true, true, "<priority>-5</priority>");
  Jid me = Online("u@d/me");
  absl::StatusOr<std::vector<XmlElement>> replies =
      Sync(router_.RouteStanza(me, *ParseStanzaXml("<message to='c@d' id='m1'><body>x</body></message>")));
  ASSERT_TRUE(replies.ok());
  ASSERT_EQ(replies->size(), 1u);
  EXPECT_NE((*replies)[0].FindChild("error")->FindChild("service-unavailable"), nullptr);
  EXPECT_THAT(deliverer_.Take(), IsEmpty());
}

TEST_F(PresenceRouterTest, DispatchHonoursAudiences) {
  Online("c@d/avail", true, /*interested=*/false);
  Online("c@d/interested", /*available=*/false, true);
  xmpp::presence::v1::DispatchRequest request;
  auto add = [&](xmpp::presence::v1::Audience audience, const std::string& type) {
    auto* d = request.add_effects()->mutable_delivery();
    d->set_to("c@d");
    d->set_audience(audience);
    d->mutable_stanza()->set_xml(absl::StrCat("<presence type='", type, "' from='u@d'/>"));
  };
  add(xmpp::presence::v1::AUDIENCE_AVAILABLE, "subscribe");
  add(xmpp::presence::v1::AUDIENCE_INTERESTED, "subscribed");
  add(xmpp::presence::v1::AUDIENCE_AVAILABLE_OR_INTERESTED, "unsubscribed");
  ASSERT_TRUE(Sync(router_.Dispatch(request)).ok());
  EXPECT_THAT(deliverer_.Take(),
              ElementsAre("c@d/avail <- presence subscribe from u@d",
                          "c@d/interested <- presence subscribed from u@d",
                          "c@d/avail <- presence unsubscribed from u@d",
                          "c@d/interested <- presence unsubscribed from u@d"));
}

TEST_F(PresenceRouterTest, InitialPresenceDeliversWaitingRequests) {  // checklist 31
  ASSERT_TRUE(redis_.Command({"HSET", keys::Pending("u@d"), "c@d",
                              "<presence type='subscribe' from='c@d' to='u@d'/>"}).ok());
  Jid me = Online("u@d/me", false);
  Presence(me, "<presence/>");
  EXPECT_THAT(deliverer_.Take(), ElementsAre("u@d/me <- presence from u@d/me",
                                             "u@d/me <- presence subscribe from c@d"));
}

TEST_F(PresenceRouterTest, ResourceConflictBindsANewResource) {  // checklist 8, A18
  absl::StatusOr<std::string> a = Sync(router_.BindSession("gw1", J("u@d"), "same"));
  absl::StatusOr<std::string> b = Sync(router_.BindSession("gw2", J("u@d"), "same"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, "u@d/same");
  EXPECT_NE(*b, *a);
}

// What an input delivers to sessions on the calling gateway goes back to it in the answer, in
// order; only the other gateways get Deliver calls.
TEST_F(PresenceRouterTest, DeliveriesToTheCallingGatewayComeBackOnTheReturnPath) {
  Online("c@d/here");  // on gw1
  Jid there = J("c@d/there");
  ASSERT_TRUE(Sync(router_.BindSession("gw2", there.Bare(), there.resource())).ok());
  ASSERT_TRUE(Sync(router_.SetInterested(there)).ok());
  deliverer_.Take();
  xmpp::presence::v1::DispatchRequest request;
  for (const char* type : {"subscribe", "unsubscribe"}) {
    auto* d = request.add_effects()->mutable_delivery();
    d->set_to("c@d");
    d->set_audience(xmpp::presence::v1::AUDIENCE_INTERESTED);
    d->mutable_stanza()->set_xml(absl::StrCat("<presence type='", type, "' from='u@d'/>"));
  }
  google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem> items;
  ReturnPath back{"gw1", &items};
  ASSERT_TRUE(Sync(router_.Dispatch(request, &back)).ok());
  ASSERT_EQ(items.size(), 2);
  EXPECT_EQ(items[0].full_jid(), "c@d/here");
  EXPECT_NE(items[0].xml().find("subscribe"), std::string::npos);
  EXPECT_NE(items[1].xml().find("unsubscribe"), std::string::npos);
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/there <- presence subscribe from u@d",
                                             "c@d/there <- presence unsubscribe from u@d"));
}

// A sequence's flows take effect in order; one that fails (here a snapshot with a bad address)
// delivers nothing and leaves the later ones unrun, for the caller to send again.
TEST_F(PresenceRouterTest, ASequenceStopsAtItsFirstFailedFlow) {
  Online("c@d/here");
  auto flow = [](const std::string& type) {
    xmpp::presence::v1::DispatchRequest request;
    auto* d = request.add_effects()->mutable_delivery();
    d->set_to("c@d");
    d->set_audience(xmpp::presence::v1::AUDIENCE_INTERESTED);
    d->mutable_stanza()->set_xml(absl::StrCat("<presence type='", type, "' from='u@d'/>"));
    return request;
  };
  xmpp::presence::v1::DispatchRequest first = flow("subscribe");
  xmpp::presence::v1::DispatchRequest second = flow("unsubscribe");
  xmpp::presence::v1::DispatchRequest broken = flow("subscribed");
  broken.add_effects()->mutable_presence_snapshot()->set_from_bare("@@");
  xmpp::presence::v1::DispatchRequest after = flow("unsubscribed");
  std::vector<absl::Status> done =
      Sync(router_.DispatchSequence({&first, &second, &broken, &after}, {}));
  ASSERT_EQ(done.size(), 4u);
  EXPECT_TRUE(done[0].ok());
  EXPECT_TRUE(done[1].ok());
  EXPECT_TRUE(absl::IsInvalidArgument(done[2])) << done[2];
  EXPECT_TRUE(absl::IsUnavailable(done[3])) << done[3];
  EXPECT_THAT(deliverer_.Take(), ElementsAre("c@d/here <- presence subscribe from u@d",
                                             "c@d/here <- presence unsubscribe from u@d"));
}

}  // namespace
}  // namespace xc
