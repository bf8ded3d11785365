// The adaptive batcher of unary calls, with a fake transport: what a loop turn adds leaves in one
// call, no more than max_in_flight calls are out while the rest wait and then leave together, a
// unit never spans two calls, and each unit gets its own slice and the call's status.
#include "core/grpc/call_batcher.h"

#include <functional>
#include <string>
#include <vector>

#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "gtest/gtest.h"
#include "proto/xmpp/gateway/v1/gateway.pb.h"

namespace xc {
namespace {

using xmpp::gateway::v1::DeliverItem;
using xmpp::gateway::v1::DeliverRequest;
using xmpp::gateway::v1::DeliverResponse;
using Batcher = CallBatcher<DeliverRequest, DeliverResponse>;

// Records every call; the test answers them when it wants.
struct FakeTransport {
  struct Call {
    DeliverRequest request;
    DeliverResponse* response;
    std::function<void(grpc::Status)> done;
  };
  std::vector<Call> calls;
  Batcher::Start start() {
    return [this](grpc::ClientContext*, const DeliverRequest* request, DeliverResponse* response,
                  std::function<void(grpc::Status)> done) {
      calls.push_back({*request, response, std::move(done)});
    };
  }
  // Answers call i: every item whose jid starts with "gone" is reported missing.
  void Answer(size_t i, grpc::Status status = grpc::Status::OK) {
    Call& c = calls[i];
    for (int k = 0; k < c.request.items_size(); ++k) {
      if (c.request.items(k).full_jid().rfind("gone", 0) == 0) {
        c.response->add_missing_full_jids(c.request.items(k).full_jid());
        c.response->add_missing_indexes(k);
      }
    }
    c.done(status);
  }
};

int AddItems(DeliverRequest* r, const std::vector<std::string>& jids) {
  for (const std::string& jid : jids) r->add_items()->set_full_jid(jid);
  return static_cast<int>(jids.size());
}

class CallBatcherTest : public ::testing::Test {
 protected:
  void Turn() { loop_.RunUntil([] { return false; }, absl::Milliseconds(5)); }

  EventLoop loop_;
  FakeTransport transport_;
};

TEST_F(CallBatcherTest, UnitsOfOneTurnLeaveInOneCallAndGetTheirSlices) {
  Batcher batcher(&loop_, transport_.start());
  std::vector<std::pair<int, int>> slices;
  for (int u = 0; u < 3; ++u) {
    batcher.Add([&](DeliverRequest* r) { return AddItems(r, {"a", "b"}); },
                [&](const grpc::Status& s, std::shared_ptr<const DeliverResponse>,
                    Batcher::Slice slice) {
                  EXPECT_TRUE(s.ok());
                  slices.emplace_back(slice.first, slice.count);
                });
  }
  EXPECT_TRUE(transport_.calls.empty()) << "nothing leaves before the end of the turn";
  Turn();
  ASSERT_EQ(transport_.calls.size(), 1u);
  EXPECT_EQ(transport_.calls[0].request.items_size(), 6);
  transport_.Answer(0);
  Turn();
  EXPECT_EQ(slices, (std::vector<std::pair<int, int>>{{0, 2}, {2, 2}, {4, 2}}));
}

TEST_F(CallBatcherTest, WhileCallsAreOutUnitsWaitAndThenLeaveTogether) {
  CallBatcherOptions options;
  options.max_in_flight = 1;
  Batcher batcher(&loop_, transport_.start(), options);
  int answered = 0;
  auto add = [&](const std::string& jid) {
    batcher.Add([&](DeliverRequest* r) { return AddItems(r, {jid}); },
                [&](const grpc::Status&, std::shared_ptr<const DeliverResponse>, Batcher::Slice) {
                  ++answered;
                });
  };
  add("first");
  Turn();
  ASSERT_EQ(transport_.calls.size(), 1u);
  add("second");
  Turn();
  add("third");
  Turn();
  EXPECT_EQ(transport_.calls.size(), 1u) << "one call in flight at most";
  transport_.Answer(0);
  Turn();
  ASSERT_EQ(transport_.calls.size(), 2u);
  EXPECT_EQ(transport_.calls[1].request.items_size(), 2) << "the waiting units rode one call";
  transport_.Answer(1);
  Turn();
  EXPECT_EQ(answered, 3);
}

TEST_F(CallBatcherTest, AUnitNeverSpansTwoCalls) {
  CallBatcherOptions options;
  options.max_units_per_call = 2;
  Batcher batcher(&loop_, transport_.start(), options);
  for (int u = 0; u < 5; ++u) {
    batcher.Add([&](DeliverRequest* r) { return AddItems(r, {"x", "y", "z"}); },
                [](const grpc::Status&, std::shared_ptr<const DeliverResponse>, Batcher::Slice) {});
  }
  Turn();
  ASSERT_EQ(transport_.calls.size(), 3u);
  EXPECT_EQ(transport_.calls[0].request.items_size(), 6);
  EXPECT_EQ(transport_.calls[1].request.items_size(), 6);
  EXPECT_EQ(transport_.calls[2].request.items_size(), 3);
  for (size_t i = 0; i < 3; ++i) transport_.Answer(i);
  Turn();
}

TEST_F(CallBatcherTest, ACallTakesNoMoreUnitsOnceItHoldsEnoughEntries) {
  CallBatcherOptions options;
  options.max_entries_per_call = 4;
  Batcher batcher(&loop_, transport_.start(), options);
  const std::vector<std::vector<std::string>> units = {{"a", "b", "c"}, {"d", "e"}, {"f"},
                                                        {"g", "h", "i", "j", "k"}, {"l"}};
  for (const std::vector<std::string>& unit : units) {
    batcher.Add([&](DeliverRequest* r) { return AddItems(r, unit); },
                [](const grpc::Status&, std::shared_ptr<const DeliverResponse>, Batcher::Slice) {});
  }
  Turn();
  ASSERT_EQ(transport_.calls.size(), 3u);
  EXPECT_EQ(transport_.calls[0].request.items_size(), 5) << "3 + 2: over the bound, not split";
  EXPECT_EQ(transport_.calls[1].request.items_size(), 6) << "1 + 5";
  EXPECT_EQ(transport_.calls[2].request.items_size(), 1);
  for (size_t i = 0; i < 3; ++i) transport_.Answer(i);
  Turn();
}

TEST_F(CallBatcherTest, AFailedCallFailsEveryUnitInIt) {
  Batcher batcher(&loop_, transport_.start());
  std::vector<grpc::StatusCode> codes;
  for (int u = 0; u < 2; ++u) {
    batcher.Add([&](DeliverRequest* r) { return AddItems(r, {"a"}); },
                [&](const grpc::Status& s, std::shared_ptr<const DeliverResponse>,
                    Batcher::Slice) { codes.push_back(s.error_code()); });
  }
  Turn();
  transport_.Answer(0, grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  Turn();
  EXPECT_EQ(codes,
            (std::vector<grpc::StatusCode>{grpc::StatusCode::UNAVAILABLE,
                                           grpc::StatusCode::UNAVAILABLE}));
}

TEST_F(CallBatcherTest, CoroutinesAwaitTheirOwnPartOfTheAnswer) {
  Batcher batcher(&loop_, transport_.start());
  auto deliver = [&](std::vector<std::string> jids) -> Task<std::vector<std::string>> {
    auto answer = co_await batcher.Call([&](DeliverRequest* r) { return AddItems(r, jids); });
    std::vector<std::string> missing;
    for (int i = 0; i < answer.response->missing_indexes_size(); ++i) {
      int index = answer.response->missing_indexes(i);
      if (index >= answer.slice.first && index < answer.slice.first + answer.slice.count) {
        missing.push_back(answer.response->missing_full_jids(i));
      }
    }
    co_return missing;
  };
  std::vector<std::string> mine, theirs;
  bool done_mine = false, done_theirs = false;
  Spawn(deliver({"here", "gone1"}), [&](std::vector<std::string> m) {
    mine = m;
    done_mine = true;
  });
  Spawn(deliver({"gone2", "there"}), [&](std::vector<std::string> m) {
    theirs = m;
    done_theirs = true;
  });
  Turn();
  ASSERT_EQ(transport_.calls.size(), 1u);
  transport_.Answer(0);
  ASSERT_TRUE(loop_.RunUntil([&] { return done_mine && done_theirs; }, absl::Seconds(5)));
  EXPECT_EQ(mine, (std::vector<std::string>{"gone1"}));
  EXPECT_EQ(theirs, (std::vector<std::string>{"gone2"}));
}

}  // namespace
}  // namespace xc
