// Every cell of RFC 6121 Appendix A.2 (outbound) and A.3 (inbound), plus the pre-approval
// variants, as a table: state before, stanza, state after, and exact effects.
#include "services/roster/subscription_state_machine.h"

#include <string>

#include "gtest/gtest.h"

namespace xc {
namespace {

using V = SubscriptionVerb;

SubscriptionState S(const std::string& name) {
  SubscriptionState s;
  EXPECT_TRUE(ParseStateName(name, &s)) << name;
  return s;
}

struct OutRow {
  const char* before;
  V verb;
  const char* after;
  bool route;
  bool unavailable_first;
  bool current_presence;
  bool delete_request;
};

// A.2: "route" = MUST route; the rest are MUST NOT / SHOULD NOT route.
const OutRow kOutbound[] = {
    // subscribe: always routed.
    {"N", V::kSubscribe, "N+O", true, false, false, false},
    {"N+O", V::kSubscribe, "N+O", true, false, false, false},
    {"N+I", V::kSubscribe, "N+OI", true, false, false, false},
    {"N+OI", V::kSubscribe, "N+OI", true, false, false, false},
    {"T", V::kSubscribe, "T", true, false, false, false},
    {"T+I", V::kSubscribe, "T+I", true, false, false, false},
    {"F", V::kSubscribe, "F+O", true, false, false, false},
    {"F+O", V::kSubscribe, "F+O", true, false, false, false},
    {"B", V::kSubscribe, "B", true, false, false, false},
    // unsubscribe: always routed.
    {"N", V::kUnsubscribe, "N", true, false, false, false},
    {"N+O", V::kUnsubscribe, "N", true, false, false, false},
    {"N+I", V::kUnsubscribe, "N+I", true, false, false, false},
    {"N+OI", V::kUnsubscribe, "N+I", true, false, false, false},
    {"T", V::kUnsubscribe, "N", true, false, false, false},
    {"T+I", V::kUnsubscribe, "N+I", true, false, false, false},
    {"F", V::kUnsubscribe, "F", true, false, false, false},
    {"F+O", V::kUnsubscribe, "F", true, false, false, false},
    {"B", V::kUnsubscribe, "F", true, false, false, false},
    // subscribed: approval where a request waits; pre-approval (never routed) in N, N+O, T.
    {"N", V::kSubscribed, "N+A", false, false, false, false},
    {"N+O", V::kSubscribed, "N+O+A", false, false, false, false},
    {"N+I", V::kSubscribed, "F", true, false, true, true},
    {"N+OI", V::kSubscribed, "F+O", true, false, true, true},
    {"T", V::kSubscribed, "T+A", false, false, false, false},
    {"T+I", V::kSubscribed, "B", true, false, true, true},
    {"F", V::kSubscribed, "F", false, false, false, false},
    {"F+O", V::kSubscribed, "F+O", false, false, false, false},
    {"B", V::kSubscribed, "B", false, false, false, false},
    // unsubscribed: deny or cancel; unavailable first only when leaving From (A5).
    {"N", V::kUnsubscribed, "N", false, false, false, false},
    {"N+O", V::kUnsubscribed, "N+O", false, false, false, false},
    {"N+I", V::kUnsubscribed, "N", true, false, false, true},
    {"N+OI", V::kUnsubscribed, "N+O", true, false, false, true},
    {"T", V::kUnsubscribed, "T", false, false, false, false},
    {"T+I", V::kUnsubscribed, "T", true, false, false, true},
    {"F", V::kUnsubscribed, "N", true, true, false, false},
    {"F+O", V::kUnsubscribed, "N+O", true, true, false, false},
    {"B", V::kUnsubscribed, "T", true, true, false, false},
    // Pre-approval variants (§3.4, §3.2.2): repeat keeps it, unsubscribed withdraws it unrouted.
    {"N+A", V::kSubscribed, "N+A", false, false, false, false},
    {"N+A", V::kUnsubscribed, "N", false, false, false, false},
    {"N+O+A", V::kUnsubscribed, "N+O", false, false, false, false},
    {"T+A", V::kUnsubscribed, "T", false, false, false, false},
    {"N+A", V::kSubscribe, "N+O+A", true, false, false, false},
    {"T+A", V::kUnsubscribe, "N+A", true, false, false, false},
};

class OutboundTest : public ::testing::TestWithParam<OutRow> {};

TEST_P(OutboundTest, MatchesAppendixA2) {
  const OutRow& r = GetParam();
  OutboundOutcome o = OutboundTransition(S(r.before), r.verb);
  EXPECT_EQ(StateName(o.next), r.after);
  EXPECT_EQ(o.route, r.route);
  EXPECT_EQ(o.unavailable_first, r.unavailable_first);
  EXPECT_EQ(o.send_current_presence, r.current_presence);
  EXPECT_EQ(o.delete_stored_request, r.delete_request);
}

std::string RowName(const char* before, V verb) {
  std::string name = std::string(VerbName(verb)) + "_in_" + before;
  for (char& c : name) {
    if (c == '+') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AppendixA2, OutboundTest, ::testing::ValuesIn(kOutbound),
                         [](const ::testing::TestParamInfo<OutRow>& info) {
                           return RowName(info.param.before, info.param.verb);
                         });

struct InRow {
  const char* before;
  V verb;
  const char* after;
  bool deliver;
  AutoReply reply;
  bool store;
  bool delete_request;
  bool unavailable_to_sender;
  bool presence_to_sender;
};

constexpr AutoReply kNo = AutoReply::kNone;
constexpr AutoReply kSubd = AutoReply::kSubscribed;
constexpr AutoReply kUnsubd = AutoReply::kUnsubscribed;

const InRow kInbound[] = {
    // subscribe: deliver (and keep) unless a request already waits or From already holds.
    {"N", V::kSubscribe, "N+I", true, kNo, true, false, false, false},
    {"N+O", V::kSubscribe, "N+OI", true, kNo, true, false, false, false},
    {"N+I", V::kSubscribe, "N+I", false, kNo, false, false, false, false},
    {"N+OI", V::kSubscribe, "N+OI", false, kNo, false, false, false, false},
    {"T", V::kSubscribe, "T+I", true, kNo, true, false, false, false},
    {"T+I", V::kSubscribe, "T+I", false, kNo, false, false, false, false},
    {"F", V::kSubscribe, "F", false, kSubd, false, false, false, false},
    {"F+O", V::kSubscribe, "F+O", false, kSubd, false, false, false, false},
    {"B", V::kSubscribe, "B", false, kSubd, false, false, false, false},
    // unsubscribe: ends From or withdraws Pending In; auto `unsubscribed` (footnote 4).
    {"N", V::kUnsubscribe, "N", false, kNo, false, false, false, false},
    {"N+O", V::kUnsubscribe, "N+O", false, kNo, false, false, false, false},
    {"N+I", V::kUnsubscribe, "N", true, kUnsubd, false, true, false, false},
    {"N+OI", V::kUnsubscribe, "N+O", true, kUnsubd, false, true, false, false},
    {"T", V::kUnsubscribe, "T", false, kNo, false, false, false, false},
    {"T+I", V::kUnsubscribe, "T", true, kUnsubd, false, true, false, false},
    {"F", V::kUnsubscribe, "N", true, kUnsubd, false, false, true, false},
    {"F+O", V::kUnsubscribe, "N+O", true, kUnsubd, false, false, true, false},
    {"B", V::kUnsubscribe, "T", true, kUnsubd, false, false, true, false},
    // subscribed: only an answer to Pending Out.
    {"N", V::kSubscribed, "N", false, kNo, false, false, false, false},
    {"N+O", V::kSubscribed, "T", true, kNo, false, false, false, false},
    {"N+I", V::kSubscribed, "N+I", false, kNo, false, false, false, false},
    {"N+OI", V::kSubscribed, "T+I", true, kNo, false, false, false, false},
    {"T", V::kSubscribed, "T", false, kNo, false, false, false, false},
    {"T+I", V::kSubscribed, "T+I", false, kNo, false, false, false, false},
    {"F", V::kSubscribed, "F", false, kNo, false, false, false, false},
    {"F+O", V::kSubscribed, "B", true, kNo, false, false, false, false},
    {"B", V::kSubscribed, "B", false, kNo, false, false, false, false},
    // unsubscribed: denial of Pending Out or cancellation of To.
    {"N", V::kUnsubscribed, "N", false, kNo, false, false, false, false},
    {"N+O", V::kUnsubscribed, "N", true, kNo, false, false, false, false},
    {"N+I", V::kUnsubscribed, "N+I", false, kNo, false, false, false, false},
    {"N+OI", V::kUnsubscribed, "N+I", true, kNo, false, false, false, false},
    {"T", V::kUnsubscribed, "N", true, kNo, false, false, false, false},
    {"T+I", V::kUnsubscribed, "N+I", true, kNo, false, false, false, false},
    {"F", V::kUnsubscribed, "F", false, kNo, false, false, false, false},
    {"F+O", V::kUnsubscribed, "F", true, kNo, false, false, false, false},
    {"B", V::kUnsubscribed, "F", true, kNo, false, false, false, false},
    // Pre-approved contact subscribes (footnote 3, A3, A14): approved for the user, not
    // delivered, presence sent, flag cleared.
    {"N+A", V::kSubscribe, "F", false, kSubd, false, false, false, true},
    {"N+O+A", V::kSubscribe, "F+O", false, kSubd, false, false, false, true},
    {"T+A", V::kSubscribe, "B", false, kSubd, false, false, false, true},
    // Inbound answers leave a pre-approval alone.
    {"N+O+A", V::kSubscribed, "T+A", true, kNo, false, false, false, false},
    {"T+A", V::kUnsubscribed, "N+A", true, kNo, false, false, false, false},
};

class InboundTest : public ::testing::TestWithParam<InRow> {};

TEST_P(InboundTest, MatchesAppendixA3) {
  const InRow& r = GetParam();
  InboundOutcome o = InboundTransition(S(r.before), r.verb);
  EXPECT_EQ(StateName(o.next), r.after);
  EXPECT_EQ(o.deliver, r.deliver);
  EXPECT_EQ(o.auto_reply, r.reply);
  EXPECT_EQ(o.store_request, r.store);
  EXPECT_EQ(o.delete_stored_request, r.delete_request);
  EXPECT_EQ(o.unavailable_to_sender, r.unavailable_to_sender);
  EXPECT_EQ(o.current_presence_to_sender, r.presence_to_sender);
}

INSTANTIATE_TEST_SUITE_P(AppendixA3, InboundTest, ::testing::ValuesIn(kInbound),
                         [](const ::testing::TestParamInfo<InRow>& info) {
                           return RowName(info.param.before, info.param.verb);
                         });

TEST(SubscriptionStateTest, NamesRoundTripAndMapToSubscription) {
  for (const char* name : {"N", "N+O", "N+I", "N+OI", "T", "T+I", "F", "F+O", "B", "N+A", "T+A"}) {
    EXPECT_EQ(StateName(S(name)), name);
  }
  EXPECT_EQ(SubscriptionOf(S("T+I")), Subscription::kTo);
  EXPECT_EQ(SubscriptionOf(S("F+O")), Subscription::kFrom);
  EXPECT_EQ(SubscriptionOf(S("B")), Subscription::kBoth);
  EXPECT_EQ(SubscriptionOf(S("N+OI")), Subscription::kNone);
  SubscriptionState unused;
  EXPECT_FALSE(ParseStateName("X", &unused));
}

}  // namespace
}  // namespace xc
