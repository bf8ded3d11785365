// The roster processor over the Redis store against a real redis-server: every state × stanza ×
// direction, and the exact effects (and their order) of the RFC 6121 flows.
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/stanza/namespaces.h"
#include "core/store/keys.h"
#include "core/xml/xml_fragment.h"
#include "gtest/gtest.h"
#include "proto/xmpp/store/v1/records.pb.h"
#include "services/roster/roster_consistency.h"
#include "services/roster/roster_processor.h"
#include "services/roster/roster_store_redis.h"
#include "services/roster/waiting_census.h"
#include "tests/services/roster/roster_redis_fixture.h"
#include "tests/support/redis_server.h"
#include "core/redis/hiredis_client.h"

namespace xc {
namespace {

using xmpp::store::v1::RosterItemRecord;

const char* const kStates[] = {"N", "N+O", "N+I", "N+OI", "T", "T+I", "F", "F+O", "B",
                               "N+A", "N+O+A", "T+A"};
const SubscriptionVerb kVerbs[] = {SubscriptionVerb::kSubscribe, SubscriptionVerb::kSubscribed,
                                   SubscriptionVerb::kUnsubscribe,
                                   SubscriptionVerb::kUnsubscribed};

SubscriptionState Named(const char* name) {
  SubscriptionState s;
  EXPECT_TRUE(ParseStateName(name, &s)) << name;
  return s;
}

SubscriptionState Mirror(const SubscriptionState& s) {
  SubscriptionState m;
  m.to = s.from;
  m.from = s.to;
  m.pending_out = s.pending_in;
  m.pending_in = s.pending_out;
  return m;
}

class RosterProcessorRedisBase : public RosterRedisFixture {
 protected:
  void SetUp() override {
    RosterRedisFixture::SetUp();
    AddAccounts({"u@d", "c@d"});
  }

  void SetState(const std::string& user, const std::string& contact, const SubscriptionState& s,
                bool in_roster = true) {
    RosterItemRecord r;
    r.set_to(s.to);
    r.set_from(s.from);
    r.set_pending_out(s.pending_out);
    r.set_pending_in(s.pending_in);
    r.set_approved(s.approved);
    r.set_in_roster(in_roster);
    ASSERT_TRUE(redis_->Command({"HSET", keys::Roster(user), contact, r.SerializeAsString()}).ok());
  }

  std::string StoredState(const std::string& user, const std::string& contact) {
    absl::StatusOr<RedisReply> r = redis_->Command({"HGET", keys::Roster(user), contact});
    EXPECT_TRUE(r.ok());
    if (r->is_nil()) return "N";
    RosterItemRecord rec;
    EXPECT_TRUE(rec.ParseFromString(r->str));
    SubscriptionState s;
    s.to = rec.to();
    s.from = rec.from();
    s.pending_out = rec.pending_out();
    s.pending_in = rec.pending_in();
    s.approved = rec.approved();
    return StateName(s);
  }

  XmlElement Stanza(const std::string& xml) { return *ParseStanzaXml(xml); }

  RosterOutput Subscription(const std::string& from, const std::string& to, SubscriptionVerb verb,
                            const std::string& extra = "") {
    absl::StatusOr<RosterOutput> out = Sync(processor_->HandleSubscription(
        *Jid::Parse(from), Stanza(absl::StrCat("<presence type='", VerbName(verb), "' from='",
                                               from, "' to='", to, "' id='x'>", extra,
                                               "</presence>"))));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : RosterOutput();
  }

  // u's subscribe to c, with `reads` as the entries read ahead.
  absl::StatusOr<RosterOutput> SubscribeWithReads(RosterProcessor::SubscriptionReads reads) {
    std::optional<RosterProcessor::SubscriptionReads> ahead(std::move(reads));
    return Sync(processor_->HandleSubscription(
        *Jid::Parse("u@d/r"), Stanza("<presence type='subscribe' from='u@d' to='c@d' id='x'/>"),
        &ahead));
  }

  RosterProcessor::SubscriptionReads ReadPair(const std::string& user,
                                              const std::string& contact) {
    RosterProcessor::SubscriptionReads reads{*Jid::Parse(user), *Jid::Parse(contact)};
    Sync(processor_->ReadPair(&reads));
    return reads;
  }

  RosterOutput Iq(const std::string& session, const std::string& xml) {
    absl::StatusOr<RosterOutput> out =
        Sync(processor_->HandleRosterIq(*Jid::Parse(session), Stanza(xml)));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : RosterOutput();
  }

  // One line per effect, e.g. "deliver subscribe u@d->c@d [available]", "push u@d: c@d none+ask",
  // "presence u@d->c@d", "unavailable u@d->c@d".
  static std::vector<std::string> Describe(const RosterOutput& out) {
    std::vector<std::string> lines;
    for (const auto& e : out.effects) {
      if (e.has_presence_snapshot()) {
        const auto& p = e.presence_snapshot();
        lines.push_back(absl::StrCat(p.unavailable() ? "unavailable " : "presence ", p.from_bare(),
                                     "->", p.to_bare()));
        continue;
      }
      const auto& d = e.delivery();
      absl::StatusOr<XmlElement> x = ParseStanzaXml(d.stanza().xml());
      if (x->name() == "iq") {
        const XmlElement* item = x->FindChild("query", kNsRoster)->FindChild("item", kNsRoster);
        std::string desc = item->Attribute("subscription");
        if (item->Attribute("ask") == "subscribe") desc += "+ask";
        if (item->Attribute("approved") == "true") desc += "+approved";
        lines.push_back(absl::StrCat("push ", d.to(), ": ", item->Attribute("jid"), " ", desc));
        continue;
      }
      const char* audience =
          d.audience() == xmpp::presence::v1::AUDIENCE_AVAILABLE ? "available" : "interested";
      lines.push_back(absl::StrCat("deliver ", x->Attribute("type"), " ", x->Attribute("from"),
                                   "->", x->Attribute("to"), " [", audience, "]"));
    }
    return lines;
  }

  // Runs a processor coroutine to its end on the test's loop (the store's connection lives on
  // it; the blocking client `redis_` used for setup and checks has a loop of its own).
  template <typename T>
  T Sync(Task<T> task) {
    return RunToCompletion(&loop_, std::move(task));
  }
};

// Each test runs twice: with the store changing both entries of a subscription pair in one
// script (one Redis server), and one entry at a time (as on Redis Cluster).
class RosterProcessorRedisTest : public RosterProcessorRedisBase,
                                 public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    single_node_ = GetParam();
    RosterProcessorRedisBase::SetUp();
  }
};

// Every state and stanza, outbound from u and inbound at c, with c holding the mirror state:
// what is stored afterwards on both sides must be what Appendix A (the state machine, whose
// every cell subscription_state_machine_test checks by hand) says, including auto-replies.
TEST_P(RosterProcessorRedisTest, EveryTransitionIsStoredAsAppendixASays) {
  int checked = 0;
  for (const char* name : kStates) {
    for (SubscriptionVerb verb : kVerbs) {
      SCOPED_TRACE(absl::StrCat(VerbName(verb), " from u in ", name));
      server_->FlushAll();
      SetUp();
      SubscriptionState su;
      ASSERT_TRUE(ParseStateName(name, &su));
      SubscriptionState sc = Mirror(su);
      SetState("u@d", "c@d", su);
      SetState("c@d", "u@d", sc);

      // Oracle: outbound on u, inbound on c, then automatic replies back and forth.
      OutboundOutcome o = OutboundTransition(su, verb);
      su = o.next;
      struct Hop { bool to_c; SubscriptionVerb verb; };
      std::deque<Hop> hops;
      if (o.route) hops.push_back({true, verb});
      for (int depth = 0; !hops.empty() && depth < 3; ++depth) {
        Hop h = hops.front();
        hops.pop_front();
        SubscriptionState& side = h.to_c ? sc : su;
        InboundOutcome in = InboundTransition(side, h.verb);
        side = in.next;
        if (in.auto_reply == AutoReply::kSubscribed) hops.push_back({!h.to_c, SubscriptionVerb::kSubscribed});
        if (in.auto_reply == AutoReply::kUnsubscribed) hops.push_back({!h.to_c, SubscriptionVerb::kUnsubscribed});
      }
      Subscription("u@d", "c@d", verb);
      EXPECT_EQ(StoredState("u@d", "c@d"), StateName(su));
      EXPECT_EQ(StoredState("c@d", "u@d"), StateName(sc));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 48);
}

// Inbound processing alone, every cell, from a contact whose server is elsewhere.
TEST_P(RosterProcessorRedisTest, EveryInboundTransitionIsStored) {
  for (const char* name : kStates) {
    for (SubscriptionVerb verb : kVerbs) {
      SCOPED_TRACE(absl::StrCat(VerbName(verb), " to u in ", name));
      server_->FlushAll();
      SetUp();
      SubscriptionState su;
      ASSERT_TRUE(ParseStateName(name, &su));
      SetState("u@d", "x@elsewhere", su);
      absl::StatusOr<RosterOutput> out = Sync(processor_->HandleInbound(
          *Jid::Parse("u@d"), *Jid::Parse("x@elsewhere"),
          Stanza(absl::StrCat("<presence type='", VerbName(verb), "'/>"))));
      ASSERT_TRUE(out.ok());
      InboundOutcome expected = InboundTransition(su, verb);
      EXPECT_EQ(StoredState("u@d", "x@elsewhere"), StateName(expected.next));
      bool delivered = false;
      for (const std::string& line : Describe(*out)) {
        if (line.rfind("deliver", 0) == 0) delivered = true;
      }
      EXPECT_EQ(delivered, expected.deliver);
      absl::StatusOr<RedisReply> pending =
          redis_->Command({"HEXISTS", keys::Pending("u@d"), "x@elsewhere"});
      EXPECT_EQ(pending->integer == 1, expected.store_request);
    }
  }
}

TEST_P(RosterProcessorRedisTest, SubscribeRoutesThenPushes) {  // checklist 29, 30
  RosterOutput out = Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe, "<status>hi</status>");
  EXPECT_EQ(Describe(out), (std::vector<std::string>{"deliver subscribe u@d->c@d [available]",
                                                     "push u@d: c@d none+ask"}));
  // The whole stanza waits for c (extension content kept).
  absl::StatusOr<RedisReply> stored = redis_->Command({"HGET", keys::Pending("c@d"), "u@d"});
  EXPECT_NE(stored->str.find("<status>hi</status>"), std::string::npos);
  // A repeat is routed but changes nothing and is not delivered again (checklist 30, 38).
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe)),
            std::vector<std::string>{});
  // c's roster does not list u while the request waits (checklist 32).
  RosterOutput get = Iq("c@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
  EXPECT_EQ(get.replies[0].FindChild("query", kNsRoster)->ElementCount(), 0u);
}

TEST_P(RosterProcessorRedisTest, SubscribeFromFromPushesFromAsk) {  // checklist 30
  SetState("u@d", "c@d", Named("F"));
  SetState("c@d", "u@d", Named("T"));
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe)),
            (std::vector<std::string>{"deliver subscribe u@d->c@d [available]",
                                      "push u@d: c@d from+ask"}));
}

TEST_P(RosterProcessorRedisTest, ApprovalOrder) {  // checklist 33
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  EXPECT_EQ(Describe(Subscription("c@d", "u@d", SubscriptionVerb::kSubscribed)),
            (std::vector<std::string>{"deliver subscribed c@d->u@d [interested]",
                                      "push u@d: c@d to", "push c@d: u@d from",
                                      "presence c@d->u@d"}));
  EXPECT_EQ(StoredState("u@d", "c@d"), "T");
  EXPECT_EQ(StoredState("c@d", "u@d"), "F");
  // The stored request is gone once answered.
  EXPECT_EQ(redis_->Command({"HLEN", keys::Pending("c@d")})->integer, 0);
}

TEST_P(RosterProcessorRedisTest, MutualApprovalEndsInBoth) {  // checklist 34
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  Subscription("c@d", "u@d", SubscriptionVerb::kSubscribe);  // c: N+OI, u: N+OI
  EXPECT_EQ(Describe(Subscription("c@d", "u@d", SubscriptionVerb::kSubscribed)),
            (std::vector<std::string>{"deliver subscribed c@d->u@d [interested]",
                                      "push u@d: c@d to", "push c@d: u@d from+ask",
                                      "presence c@d->u@d"}));
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kSubscribed)),
            (std::vector<std::string>{"deliver subscribed u@d->c@d [interested]",
                                      "push c@d: u@d both", "push u@d: c@d both",
                                      "presence u@d->c@d"}));
}

TEST_P(RosterProcessorRedisTest, UnansweredSubscribedChangesNothing) {  // checklist 35, 42
  SubscriptionState f;
  f.from = true;
  SetState("u@d", "c@d", f);
  EXPECT_TRUE(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kSubscribed)).empty());
  EXPECT_EQ(StoredState("u@d", "c@d"), "F");
  EXPECT_TRUE(Describe(Subscription("c@d", "u@d", SubscriptionVerb::kUnsubscribed)).empty());
}

TEST_P(RosterProcessorRedisTest, DenyOrder) {  // checklist 36
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  EXPECT_EQ(Describe(Subscription("c@d", "u@d", SubscriptionVerb::kUnsubscribed)),
            (std::vector<std::string>{"deliver unsubscribed c@d->u@d [interested]",
                                      "push u@d: c@d none"}));
  EXPECT_EQ(StoredState("u@d", "c@d"), "N");
  EXPECT_EQ(StoredState("c@d", "u@d"), "N");
}

TEST_P(RosterProcessorRedisTest, AlreadyApprovedAutoReplies) {  // checklist 37
  SubscriptionState b;
  b.to = b.from = true;
  SetState("u@d", "c@d", b);
  SetState("c@d", "u@d", b);
  EXPECT_TRUE(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe)).empty());
  EXPECT_EQ(StoredState("c@d", "u@d"), "B");
}

TEST_P(RosterProcessorRedisTest, PreApprovalFlow) {  // checklist 39, 40, 41
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kSubscribed)),
            (std::vector<std::string>{"push u@d: c@d none+approved"}));
  EXPECT_EQ(StoredState("c@d", "u@d"), "N");  // never routed
  // c's own push (none+ask) comes before the automatic answer, as it would from a remote
  // server, so the last push c's clients see carries the final state.
  EXPECT_EQ(Describe(Subscription("c@d", "u@d", SubscriptionVerb::kSubscribe)),
            (std::vector<std::string>{"push u@d: c@d from", "push c@d: u@d none+ask",
                                      "deliver subscribed u@d->c@d [interested]",
                                      "push c@d: u@d to", "presence u@d->c@d"}));
  EXPECT_EQ(StoredState("u@d", "c@d"), "F");
  EXPECT_EQ(StoredState("c@d", "u@d"), "T");
}

TEST_P(RosterProcessorRedisTest, WithdrawPreApproval) {  // checklist 41
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribed);
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kUnsubscribed)),
            (std::vector<std::string>{"push u@d: c@d none"}));
  EXPECT_EQ(StoredState("u@d", "c@d"), "N");
}

TEST_P(RosterProcessorRedisTest, CancelOrder) {  // checklist 43
  SubscriptionState b;
  b.to = b.from = true;
  SetState("u@d", "c@d", b);
  SetState("c@d", "u@d", b);
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kUnsubscribed)),
            (std::vector<std::string>{"unavailable u@d->c@d",
                                      "deliver unsubscribed u@d->c@d [interested]",
                                      "push c@d: u@d from", "push u@d: c@d to"}));
}

TEST_P(RosterProcessorRedisTest, UnsubscribeOrder) {  // checklist 44
  SubscriptionState b;
  b.to = b.from = true;
  SetState("u@d", "c@d", b);
  SetState("c@d", "u@d", b);
  EXPECT_EQ(Describe(Subscription("u@d", "c@d", SubscriptionVerb::kUnsubscribe)),
            (std::vector<std::string>{"deliver unsubscribe u@d->c@d [interested]",
                                      "push c@d: u@d to", "push u@d: c@d from",
                                      "unavailable c@d->u@d"}));
  EXPECT_EQ(StoredState("u@d", "c@d"), "F");
  EXPECT_EQ(StoredState("c@d", "u@d"), "T");
}

TEST_P(RosterProcessorRedisTest, UnsubscribeWithdrawsStoredRequest) {  // checklist 45
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  EXPECT_EQ(redis_->Command({"HLEN", keys::Pending("c@d")})->integer, 1);
  Subscription("u@d", "c@d", SubscriptionVerb::kUnsubscribe);
  EXPECT_EQ(redis_->Command({"HLEN", keys::Pending("c@d")})->integer, 0);
  EXPECT_EQ(StoredState("c@d", "u@d"), "N");
}

TEST_P(RosterProcessorRedisTest, MissingAccountLeaksNothing) {  // checklist 47, A1
  RosterOutput out = Subscription("u@d", "ghost@d", SubscriptionVerb::kSubscribe);
  EXPECT_EQ(Describe(out), (std::vector<std::string>{"push u@d: ghost@d none+ask"}));
  EXPECT_TRUE(out.replies.empty());
}

TEST_P(RosterProcessorRedisTest, WaitingRequestsAreCapped) {
  RosterLimits limits;
  limits.max_pending = 1;
  processor_ = std::make_unique<RosterProcessor>(store_.get(), limits);
  ASSERT_TRUE(redis_->Command({"HSET", keys::Account("v@d"), "x", "1"}).ok());
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  RosterOutput out = Subscription("v@d", "c@d", SubscriptionVerb::kSubscribe);
  ASSERT_EQ(out.replies.size(), 1u);
  EXPECT_EQ(out.replies[0].Attribute("type"), "error");
  EXPECT_NE(out.replies[0].FindChild("error")->FindChild("resource-constraint"), nullptr);
  // The one already waiting is not a new one: its sender is not refused at the cap.
  RosterOutput again = Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  for (const auto& reply : again.replies) EXPECT_NE(reply.Attribute("type"), "error");
}

struct RemoveCase {
  const char* state;
  std::vector<std::string> effects;
};

class RosterRemoveTest : public RosterProcessorRedisBase,
                         public ::testing::WithParamInterface<RemoveCase> {};

TEST_P(RosterRemoveTest, CancelsBothWaysFromTheStateBefore) {  // checklist 23, 24, A6
  SubscriptionState su;
  ASSERT_TRUE(ParseStateName(GetParam().state, &su));
  SetState("u@d", "c@d", su);
  SetState("c@d", "u@d", Mirror(su));
  RosterOutput out = Iq("u@d/r", "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>"
                                 "<item jid='c@d' subscription='remove'/></query></iq>");
  ASSERT_EQ(out.replies.size(), 1u);
  EXPECT_EQ(out.replies[0].Attribute("type"), "result");
  EXPECT_EQ(Describe(out), GetParam().effects);
  EXPECT_EQ(StoredState("u@d", "c@d"), "N");
}

INSTANTIATE_TEST_SUITE_P(
    EveryState, RosterRemoveTest,
    ::testing::Values(
        RemoveCase{"N", {"push u@d: c@d remove"}},
        RemoveCase{"N+A", {"push u@d: c@d remove"}},
        RemoveCase{"N+O", {"push u@d: c@d remove", "deliver unsubscribe u@d->c@d [interested]"}},
        RemoveCase{"N+I", {"push u@d: c@d remove", "deliver unsubscribed u@d->c@d [interested]",
                           "push c@d: u@d none"}},
        RemoveCase{"N+OI", {"push u@d: c@d remove", "deliver unsubscribe u@d->c@d [interested]",
                            "deliver unsubscribed u@d->c@d [interested]", "push c@d: u@d none"}},
        RemoveCase{"T", {"push u@d: c@d remove", "deliver unsubscribe u@d->c@d [interested]",
                         "push c@d: u@d none", "unavailable c@d->u@d"}},
        RemoveCase{"F", {"push u@d: c@d remove", "unavailable u@d->c@d",
                         "deliver unsubscribed u@d->c@d [interested]", "push c@d: u@d none"}},
        RemoveCase{"B", {"push u@d: c@d remove", "deliver unsubscribe u@d->c@d [interested]",
                         "push c@d: u@d to", "unavailable u@d->c@d",
                         "deliver unsubscribed u@d->c@d [interested]", "push c@d: u@d none",
                         "unavailable c@d->u@d"}}),
    [](const ::testing::TestParamInfo<RemoveCase>& info) {
      std::string n = info.param.state;
      for (char& c : n) {
        if (c == '+') c = '_';
      }
      return n;
    });

struct IqErrorCase {
  const char* name;
  const char* session;
  const char* xml;
  const char* condition;
};

class RosterIqErrorTest : public RosterProcessorRedisBase,
                          public ::testing::WithParamInterface<IqErrorCase> {};

TEST_P(RosterIqErrorTest, AnswersWithTheConditionAndChangesNothing) {  // checklist 18-22
  RosterOutput out = Iq(GetParam().session, GetParam().xml);
  ASSERT_EQ(out.replies.size(), 1u);
  EXPECT_EQ(out.replies[0].Attribute("type"), "error");
  const XmlElement* error = out.replies[0].FindChild("error");
  ASSERT_NE(error, nullptr);
  EXPECT_NE(error->FindChild(GetParam().condition), nullptr)
      << "expected " << GetParam().condition;
  EXPECT_TRUE(out.effects.empty());
  EXPECT_EQ(redis_->Command({"HLEN", keys::Roster("u@d")})->integer, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc6121Section2, RosterIqErrorTest,
    ::testing::Values(
        IqErrorCase{"two_items", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@d'/>"
                    "<item jid='b@d'/></query></iq>",
                    "bad-request"},
        IqErrorCase{"duplicate_group", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@d'>"
                    "<group>x</group><group>x</group></item></query></iq>",
                    "bad-request"},
        IqErrorCase{"empty_group", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@d'>"
                    "<group></group></item></query></iq>",
                    "not-acceptable"},
        IqErrorCase{"long_name", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@d' name='"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'/>"
                    "</query></iq>",
                    "not-acceptable"},
        IqErrorCase{"other_users_roster", "u@d/r",
                    "<iq type='set' id='1' to='c@d'><query xmlns='jabber:iq:roster'>"
                    "<item jid='a@d'/></query></iq>",
                    "forbidden"},
        IqErrorCase{"own_jid", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='u@d'/>"
                    "</query></iq>",
                    "not-allowed"},
        IqErrorCase{"remove_unknown", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'>"
                    "<item jid='a@d' subscription='remove'/></query></iq>",
                    "item-not-found"},
        IqErrorCase{"malformed_jid", "u@d/r",
                    "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@'/>"
                    "</query></iq>",
                    "jid-malformed"},
        IqErrorCase{"get_with_items", "u@d/r",
                    "<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='a@d'/>"
                    "</query></iq>",
                    "bad-request"}),
    [](const ::testing::TestParamInfo<IqErrorCase>& info) { return std::string(info.param.name); });

TEST_P(RosterProcessorRedisTest, SetCanonicalisesIgnoresServerAttributesAndReplacesGroups) {
  // checklist 14, 17, 19, 21
  RosterOutput out = Iq("u@d/r", "<iq type='set' id='1'><query xmlns='jabber:iq:roster'>"
                                 "<item jid='Juliet@D./balcony' name='J' subscription='both' "
                                 "ask='subscribe' approved='true'><group>A</group></item>"
                                 "</query></iq>");
  EXPECT_EQ(out.replies[0].Attribute("type"), "result");
  EXPECT_EQ(Describe(out), std::vector<std::string>{"push u@d: juliet@d none"});
  EXPECT_EQ(StoredState("u@d", "juliet@d"), "N");
  out = Iq("u@d/r", "<iq type='set' id='2'><query xmlns='jabber:iq:roster'>"
                    "<item jid='juliet@d' name=''/></query></iq>");
  RosterOutput get = Iq("u@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
  const XmlElement* item = get.replies[0].FindChild("query", kNsRoster)->FindChild("item", kNsRoster);
  ASSERT_NE(item, nullptr);
  EXPECT_FALSE(item->HasAttribute("name"));
  EXPECT_EQ(item->FindChild("group", kNsRoster), nullptr);
}

TEST_P(RosterProcessorRedisTest, Versioning) {  // checklist 25, 26, 27
  Iq("u@d/r", "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@d'/></query></iq>");
  Iq("u@d/r", "<iq type='set' id='2'><query xmlns='jabber:iq:roster'><item jid='b@d'/></query></iq>");
  Iq("u@d/r", "<iq type='set' id='3'><query xmlns='jabber:iq:roster'><item jid='c@d'/></query></iq>");
  Iq("u@d/r", "<iq type='set' id='4'><query xmlns='jabber:iq:roster'>"
              "<item jid='a@d' subscription='remove'/></query></iq>");
  RosterOutput full = Iq("u@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver=''/></iq>");
  const XmlElement* q = full.replies[0].FindChild("query", kNsRoster);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->Attribute("ver"), "4");
  EXPECT_EQ(q->ElementCount(), 2u);
  // Current version: an empty result, nothing else.
  RosterOutput same = Iq("u@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='4'/></iq>");
  ASSERT_EQ(same.replies.size(), 1u);
  EXPECT_EQ(same.replies[0].FindChild("query"), nullptr);
  // Older known version: empty result, then one push per change in order, deletions as remove.
  RosterOutput diff = Iq("u@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='2'/></iq>");
  ASSERT_EQ(diff.replies.size(), 3u);
  EXPECT_EQ(diff.replies[0].FindChild("query"), nullptr);
  const XmlElement* p1 = diff.replies[1].FindChild("query", kNsRoster);
  const XmlElement* p2 = diff.replies[2].FindChild("query", kNsRoster);
  EXPECT_EQ(p1->Attribute("ver"), "3");
  EXPECT_EQ(p1->FindChild("item", kNsRoster)->Attribute("jid"), "c@d");
  EXPECT_EQ(p2->Attribute("ver"), "4");
  EXPECT_EQ(p2->FindChild("item", kNsRoster)->Attribute("subscription"), "remove");
  // Unknown (future or garbage) version: the full roster.
  RosterOutput unknown = Iq("u@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='zz'/></iq>");
  EXPECT_NE(unknown.replies[0].FindChild("query", kNsRoster), nullptr);
  // A subscribe that lands as pending-in changes no version (§2.6).
  ASSERT_TRUE(redis_->Command({"HSET", keys::Account("z@d"), "x", "1"}).ok());
  Subscription("z@d", "u@d", SubscriptionVerb::kSubscribe);
  RosterOutput after = Iq("u@d/r", "<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='4'/></iq>");
  EXPECT_EQ(after.replies.size(), 1u);
}

// The consistency check (issue 7's tool, and issue 4's "flow interrupted between its two
// per-user steps"): every consistent pair is left alone; every pair that a lost second step
// leaves behind is found and healed by the missing inbound half.
TEST_P(RosterProcessorRedisTest, ConsistentPairsHaveNoFindings) {
  for (const char* name : {"N", "N+O", "N+I", "N+OI", "T", "T+I", "F", "F+O", "B", "N+A"}) {
    SCOPED_TRACE(name);
    server_->FlushAll();
    SetUp();
    SubscriptionState u = Named(name);
    SubscriptionState c = Mirror(u);
    c.approved = false;
    SetState("u@d", "c@d", u);
    SetState("c@d", "u@d", c);
    RosterConsistency consistency(store_.get(), processor_.get());
    absl::StatusOr<ConsistencyReport> report = Sync(consistency.Check(*Jid::Parse("u@d"), true));
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->contacts_checked, 1);
    EXPECT_TRUE(report->findings.empty()) << report->findings[0].problem;
    EXPECT_TRUE(report->output.effects.empty());
    EXPECT_EQ(StoredState("u@d", "c@d"), name);
  }
}

TEST_P(RosterProcessorRedisTest, InterruptedFlowsAreFoundAndRepaired) {
  struct Case {
    const char* lost;        // which second step did not happen
    const char* u_before;    // u's view of c
    const char* c_before;    // c's view of u
    const char* u_after;
    const char* c_after;
  };
  const Case cases[] = {
      {"c's approval never reached u", "N+O", "F", "T", "F"},
      {"u's request never reached c (or c's denial never reached u)", "N+O", "N", "N+O", "N+I"},
      {"u's cancellation never reached c", "N", "N+I", "N", "N"},
      {"u's unsubscribe never reached c", "N", "F", "N", "N"},
      {"c's unsubscribed never reached u", "T", "N", "N", "N"},
      {"c's withdrawal never reached u, other direction intact", "B", "T", "F", "T"},
      {"c's approval never reached u, other direction intact", "F+O", "B", "B", "B"},
      {"a withdrawal that also left a request behind", "T", "N+I", "N", "N"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.lost);
    server_->FlushAll();
    SetUp();
    SetState("u@d", "c@d", Named(k.u_before));
    SetState("c@d", "u@d", Named(k.c_before));
    RosterConsistency consistency(store_.get(), processor_.get());

    absl::StatusOr<ConsistencyReport> dry = Sync(consistency.Check(*Jid::Parse("u@d"), false));
    ASSERT_TRUE(dry.ok()) << dry.status();
    ASSERT_FALSE(dry->findings.empty());
    EXPECT_FALSE(dry->findings[0].repaired);
    EXPECT_EQ(StoredState("u@d", "c@d"), k.u_before);  // a check alone changes nothing
    EXPECT_EQ(StoredState("c@d", "u@d"), k.c_before);

    absl::StatusOr<ConsistencyReport> fixed = Sync(consistency.Check(*Jid::Parse("u@d"), true));
    ASSERT_TRUE(fixed.ok()) << fixed.status();
    EXPECT_TRUE(fixed->findings[0].repaired);
    EXPECT_FALSE(fixed->output.effects.empty());  // the sides' live sessions learn of it
    EXPECT_EQ(StoredState("u@d", "c@d"), k.u_after);
    EXPECT_EQ(StoredState("c@d", "u@d"), k.c_after);

    // Healed for good, seen from either side.
    for (const char* who : {"u@d", "c@d"}) {
      absl::StatusOr<ConsistencyReport> again = Sync(consistency.Check(*Jid::Parse(who), true));
      ASSERT_TRUE(again.ok());
      EXPECT_TRUE(again->findings.empty()) << who << ": " << again->findings[0].problem;
    }
  }
}

TEST_P(RosterProcessorRedisTest, ReplayedRequestIsDeliveredAndStored) {
  SetState("u@d", "c@d", Named("N+O"));
  RosterConsistency consistency(store_.get(), processor_.get());
  absl::StatusOr<ConsistencyReport> fixed = Sync(consistency.Check(*Jid::Parse("u@d"), true));
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(Describe(fixed->output),
            (std::vector<std::string>{"deliver subscribe u@d->c@d [available]"}));
  absl::StatusOr<RedisReply> pending = redis_->Command({"HEXISTS", keys::Pending("c@d"), "u@d"});
  EXPECT_EQ(pending->integer, 1);
}

// Entries read ahead (ReadPair) only seed the compare-and-swaps: when the user's entry changed
// after it was read (another session's flow), the step decides from the entry as it is now.
TEST_P(RosterProcessorRedisTest, AnEntryChangedAfterItWasReadAheadIsReadAgain) {
  RosterProcessor::SubscriptionReads stale =
      ReadPair("u@d", "c@d");
  ASSERT_TRUE(stale.mine.ok());
  EXPECT_FALSE(stale.mine->has_value());
  SetState("u@d", "c@d", Named("T"));
  SetState("c@d", "u@d", Named("F"));
  absl::StatusOr<RosterOutput> out = SubscribeWithReads(std::move(stale));
  ASSERT_TRUE(out.ok()) << out.status();
  // A subscribe in state To changes nothing (A.2.1): no Pending Out, no request stored at c.
  EXPECT_EQ(StoredState("u@d", "c@d"), "T");
  EXPECT_EQ(StoredState("c@d", "u@d"), "F");
}

// Where the store can, a subscription's two steps are one script call; otherwise two.
TEST_P(RosterProcessorRedisTest, BothStepsAreOneWriteWhereTheStoreCan) {
  ASSERT_TRUE(redis_->Command({"CONFIG", "RESETSTAT"}).ok());
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  EXPECT_EQ(StoredState("u@d", "c@d"), "N+O");
  EXPECT_EQ(StoredState("c@d", "u@d"), "N+I");
  absl::StatusOr<RedisReply> stats = redis_->Command({"INFO", "commandstats"});
  ASSERT_TRUE(stats.ok());
  const size_t at = stats->str.find("cmdstat_evalsha:calls=");
  ASSERT_NE(at, std::string::npos) << stats->str;
  const int calls = std::atoi(stats->str.c_str() + at + strlen("cmdstat_evalsha:calls="));
  EXPECT_EQ(calls, GetParam() ? 1 : 2);
}

// The contact's entry changed between the read and the write (here to From, as an approval
// stored meanwhile would leave it): nothing of the stale decision is stored, and the steps
// decide again from what is there (c already approved u, so c's server answers subscribed).
TEST_P(RosterProcessorRedisTest, AContactEntryChangedBeforeTheWriteIsDecidedAgain) {
  RosterProcessor::SubscriptionReads stale =
      ReadPair("u@d", "c@d");
  SetState("c@d", "u@d", Named("F"));
  absl::StatusOr<RosterOutput> out = SubscribeWithReads(std::move(stale));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(StoredState("c@d", "u@d"), "F");
  EXPECT_EQ(StoredState("u@d", "c@d"), "T");
  absl::StatusOr<RedisReply> pending = redis_->Command({"HEXISTS", keys::Pending("c@d"), "u@d"});
  EXPECT_EQ(pending->integer, 0);
}

// Reads of another pair than the stanza's are not used (the step reads its own): here the
// other pair's contact has no account, which used for c would drop u's request silently.
TEST_P(RosterProcessorRedisTest, ReadsOfAnotherPairAreNotUsed) {
  RosterProcessor::SubscriptionReads other =
      ReadPair("u@d", "nobody@d");
  ASSERT_TRUE(other.theirs.ok());
  EXPECT_FALSE(other.theirs->user_exists);
  absl::StatusOr<RosterOutput> out = SubscribeWithReads(std::move(other));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(StoredState("u@d", "c@d"), "N+O");
  EXPECT_EQ(StoredState("c@d", "u@d"), "N+I");
}

TEST_P(RosterProcessorRedisTest, ContactsWithoutAccountsAreNotPaired) {
  SetState("u@d", "gone@d", Named("T"));
  RosterConsistency consistency(store_.get(), processor_.get());
  absl::StatusOr<ConsistencyReport> report = Sync(consistency.Check(*Jid::Parse("u@d"), true));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->contacts_checked, 0);
  EXPECT_TRUE(report->findings.empty());
}

TEST_P(RosterProcessorRedisTest, CensusCountsEveryWaitingRequestAcrossScanPages) {
  absl::StatusOr<int64_t> none = CountWaitingRequests(*redis_, 2);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, 0);
  // A request stored by the state machine (N -> N+I on the contact's side)...
  Subscription("u@d", "c@d", SubscriptionVerb::kSubscribe);
  // ...and more spread over users and pages; other keys of the same users are not counted.
  for (int i = 0; i < 7; ++i) {
    std::string user = absl::StrCat("w", i, "@d");
    for (int j = 0; j <= i % 3; ++j) {
      ASSERT_TRUE(redis_->Command({"HSET", keys::Pending(user), absl::StrCat("x", j, "@d"),
                                   "<presence type='subscribe'/>"}).ok());
    }
    ASSERT_TRUE(redis_->Command({"HSET", keys::Roster(user), "x0@d", "r"}).ok());
  }
  absl::StatusOr<int64_t> count = CountWaitingRequests(*redis_, 2);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 1 + (1 + 2 + 3 + 1 + 2 + 3 + 1));

  metrics::Registry registry;
  {
    WaitingCensus census(redis_.get(), &registry, absl::Milliseconds(20));
    for (int i = 0; i < 200 && registry.Serialize().find("xc_roster_waiting_requests 14") ==
                                   std::string::npos;
         ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  EXPECT_NE(registry.Serialize().find("xc_roster_waiting_requests 14\n"), std::string::npos)
      << registry.Serialize();
}

INSTANTIATE_TEST_SUITE_P(Stores, RosterProcessorRedisTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "PairWrites" : "EntryWrites";
                         });

}  // namespace
}  // namespace xc
