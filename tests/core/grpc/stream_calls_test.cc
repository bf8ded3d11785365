// Unary-shaped calls on long-lived bidirectional streams (StreamCalls, ServeStreamOnLoop), over
// real gRPC on loopback: answers come back by id in completion order, a call's status and
// response arrive as a unary call's would, deadlines hold, a stream that breaks fails its calls
// and the next call opens another, an aged stream drains and closes, and a server without the
// stream method gets every call unary, the first ones included.
#include "core/grpc/stream_calls.h"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/grpc/serve_stream.h"
#include "core/grpc/unary_call.h"
#include "core/metrics/grpc_server_metrics.h"
#include "core/metrics/metrics.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/xmpp/roster/v1/roster.grpc.pb.h"
#include "tests/support/test_grpc_server.h"

namespace xc {
namespace {

using xmpp::roster::v1::RosterBatchFrame;
using xmpp::roster::v1::RosterBatchReply;
using xmpp::roster::v1::RosterBatchRequest;
using xmpp::roster::v1::RosterBatchResponse;
using xmpp::roster::v1::RosterService;
using Calls = StreamCalls<RosterBatchFrame, RosterBatchReply>;

// The test's calls say what the server does in origin_gateway: "<delay ms>:<tag>"; the answer
// echoes the tag, and the tag "fail" answers FAILED_PRECONDITION instead.
Task<grpc::Status> Echo(EventLoop* loop, const RosterBatchRequest& request,
                        RosterBatchResponse* response) {
  std::vector<std::string> parts = absl::StrSplit(request.origin_gateway(), ':');
  int delay_ms = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &delay_ms)) {
    co_return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad test request");
  }
  if (delay_ms > 0) co_await Sleep(loop, absl::Milliseconds(delay_ms));
  if (parts[1] == "fail") co_return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "told to");
  response->add_results()->set_message(parts[1]);
  co_return grpc::Status::OK;
}

// Both methods when `streams`; only the unary one (an older server, whose stream method is
// unimplemented) otherwise.
class EchoService final : public QueuedService {
 public:
  EchoService(EventLoop* loop, bool streams, const metrics::CallMetrics* call_metrics)
      : loop_(loop), streams_(streams), call_metrics_(call_metrics) {}

  grpc::Service* grpc_service() override {
    return streams_ ? static_cast<grpc::Service*>(&both_) : &unary_only_;
  }

  void Serve(GrpcQueue* queue) override {
    auto echo = [loop = loop_](const RosterBatchRequest& request, RosterBatchResponse* response) {
      return Echo(loop, request, response);
    };
    if (!streams_) {
      ServeUnary(queue, &unary_only_, &UnaryOnly::RequestHandleBatch, echo);
      return;
    }
    ServeUnary(queue, &both_, &RosterService::AsyncService::RequestHandleBatch, echo);
    ServeStream(queue, &both_, &RosterService::AsyncService::RequestHandleBatchStream,
                call_metrics_, echo);
  }

 private:
  using UnaryOnly = RosterService::WithAsyncMethod_HandleBatch<RosterService::Service>;
  EventLoop* const loop_;
  const bool streams_;
  const metrics::CallMetrics* const call_metrics_;
  RosterService::AsyncService both_;
  UnaryOnly unary_only_;
};

// A server on its own loop thread, on a loopback port (the same one again after a restart).
// Its RPCs are counted by the server metrics interceptor in a registry of their own (stream
// frames are counted as HandleBatch calls in `registry`).
class EchoServer {
 public:
  EchoServer(bool streams, int port, metrics::Registry* registry)
      : call_metrics_(registry, "xmpp.roster.v1.RosterService", "HandleBatch"),
        service_(&loop_, streams, &call_metrics_),
        rpcs_families_(&rpcs_) {
    loop_thread_ = std::thread([this] { loop_.Run(); });
    server_ = std::make_unique<TestGrpcServer>(&loop_);
    port_ = server_->Start({&service_}, port, &rpcs_);
  }
  ~EchoServer() {
    server_.reset();
    loop_.Stop();
    loop_thread_.join();
  }
  int port() const { return port_; }
  int unary_calls() { return Started("HandleBatch"); }
  int streams_opened() { return Started("HandleBatchStream"); }

 private:
  int Started(const std::string& method) {
    return static_cast<int>(
        rpcs_families_.started
            ->Add({{"grpc_service", "xmpp.roster.v1.RosterService"}, {"grpc_method", method}})
            .Value());
  }

  EventLoop loop_;
  std::thread loop_thread_;
  metrics::CallMetrics call_metrics_;
  EchoService service_;
  metrics::Registry rpcs_;
  metrics::GrpcServerFamilies rpcs_families_;
  int port_ = 0;
  std::unique_ptr<TestGrpcServer> server_;
};

class StreamCallsTest : public ::testing::Test {
 protected:
  struct Result {
    grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
    std::string message;
    std::string echoed;
  };

  void Serve(bool streams, int port = 0) {
    server_.reset();
    server_ = std::make_unique<EchoServer>(streams, port, &registry_);
    ASSERT_GT(server_->port(), 0);
    if (!channel_) {
      channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials());
      stub_ = RosterService::NewStub(channel_);
    }
  }

  std::unique_ptr<Calls> MakeCalls(StreamCallsOptions options = {}) {
    RosterService::Stub* stub = stub_.get();
    return std::make_unique<Calls>(
        queue_.get(),
        [stub](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
          return stub->PrepareAsyncHandleBatchStream(context, cq);
        },
        UnaryStart<RosterBatchRequest, RosterBatchResponse>(
            queue_.get(),
            [stub](grpc::ClientContext* context, const RosterBatchRequest& request,
                   grpc::CompletionQueue* cq) {
              return stub->PrepareAsyncHandleBatch(context, request, cq);
            }),
        options);
  }

  // Starts a call on the loop; its result lands in results_[key] (on the loop thread).
  void Start(Calls* calls, const std::string& key, const std::string& what,
             absl::Duration timeout = absl::Seconds(5)) {
    auto request = std::make_shared<RosterBatchRequest>();
    auto response = std::make_shared<RosterBatchResponse>();
    request->set_origin_gateway(what);
    calls->Call(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)),
                request.get(), response.get(),
                [this, key, request, response](grpc::Status status) {
                  loop_.Post([this, key, request, response, status] {
                    Result r;
                    r.code = status.error_code();
                    r.message = status.error_message();
                    if (response->results_size() > 0) r.echoed = response->results(0).message();
                    results_[key] = r;
                    order_.push_back(key);
                  });
                });
  }

  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    return loop_.RunUntil([&] { return results_.size() >= n; }, timeout);
  }
  void Pump(absl::Duration d) {
    loop_.RunUntil([] { return false; }, d);
  }

  // The server goes first; then the client's queue closes (its calls' last completions run
  // on loop_, which this thread pumps meanwhile).
  void TearDown() override {
    server_.reset();
    std::atomic<bool> closed{false};
    std::thread closer([&] {
      queue_->Shutdown();
      closed = true;
    });
    loop_.RunUntil([&] { return closed.load(); }, absl::Seconds(10));
    closer.join();
    EXPECT_EQ(queue_->live_calls(), 0) << "every call ended";
  }

  EventLoop loop_;  // first: destroyed last
  std::unique_ptr<GrpcQueue> queue_ = GrpcQueue::ForClients(&loop_);
  metrics::Registry registry_;
  std::unique_ptr<EchoServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<RosterService::Stub> stub_;
  std::map<std::string, Result> results_;
  std::vector<std::string> order_;
};

TEST_F(StreamCallsTest, AnswersComeBackByIdInCompletionOrder) {
  Serve(true);
  StreamCallsOptions one;
  one.streams = 1;
  auto calls = MakeCalls(one);
  Start(calls.get(), "slow", "300:slow");
  Start(calls.get(), "fast", "0:fast");
  Start(calls.get(), "failing", "0:fail");
  ASSERT_TRUE(WaitFor(3));
  EXPECT_EQ(order_.back(), "slow") << "the slow call must not hold back the others";
  EXPECT_EQ(results_["slow"].code, grpc::StatusCode::OK);
  EXPECT_EQ(results_["slow"].echoed, "slow");
  EXPECT_EQ(results_["fast"].code, grpc::StatusCode::OK);
  EXPECT_EQ(results_["fast"].echoed, "fast");
  EXPECT_EQ(results_["failing"].code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(results_["failing"].message, "told to");
  EXPECT_EQ(results_["failing"].echoed, "");
  EXPECT_EQ(server_->streams_opened(), 1);
  EXPECT_EQ(server_->unary_calls(), 0);
}

TEST_F(StreamCallsTest, ManyConcurrentCallsEachGetTheirOwnAnswer) {
  Serve(true);
  auto calls = MakeCalls();
  constexpr int kCalls = 2000;
  for (int i = 0; i < kCalls; ++i) {
    Start(calls.get(), absl::StrCat("c", i), absl::StrCat(i % 7, ":t", i));
  }
  ASSERT_TRUE(WaitFor(kCalls, absl::Seconds(30)));
  for (int i = 0; i < kCalls; ++i) {
    const Result& r = results_[absl::StrCat("c", i)];
    ASSERT_EQ(r.code, grpc::StatusCode::OK) << i << ": " << r.message;
    ASSERT_EQ(r.echoed, absl::StrCat("t", i));
  }
  EXPECT_EQ(server_->streams_opened(), 4) << "StreamCallsOptions::streams";
  EXPECT_EQ(calls->open_streams(), 4);
}

TEST_F(StreamCallsTest, EachFrameCountsAsACallOfTheUnaryMethod) {
  Serve(true);
  auto calls = MakeCalls();
  Start(calls.get(), "a", "0:a");
  Start(calls.get(), "b", "0:fail");
  ASSERT_TRUE(WaitFor(2));
  const std::string text = registry_.Serialize();
  EXPECT_NE(text.find("grpc_server_started_total{grpc_service=\"xmpp.roster.v1.RosterService\","
                      "grpc_method=\"HandleBatch\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("grpc_method=\"HandleBatch\",grpc_code=\"FailedPrecondition\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("grpc_server_handling_seconds_count{grpc_service=\"xmpp.roster.v1."
                      "RosterService\",grpc_method=\"HandleBatch\"} 2"),
            std::string::npos)
      << text;
}

TEST_F(StreamCallsTest, ADeadlineEndsTheCallAndTheStreamGoesOn) {
  Serve(true);
  StreamCallsOptions one;
  one.streams = 1;
  one.sweep = absl::Milliseconds(20);
  auto calls = MakeCalls(one);
  const absl::Time start = absl::Now();
  Start(calls.get(), "late", "1000:late", absl::Milliseconds(100));
  ASSERT_TRUE(WaitFor(1));
  EXPECT_EQ(results_["late"].code, grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900)) << "failed at its deadline, not later";
  Start(calls.get(), "next", "0:next");
  ASSERT_TRUE(WaitFor(2));
  EXPECT_EQ(results_["next"].code, grpc::StatusCode::OK);
  EXPECT_EQ(results_["next"].echoed, "next");
  Pump(absl::Milliseconds(1100));  // the late answer arrives and is dropped
  EXPECT_EQ(results_.size(), 2u);
  EXPECT_EQ(server_->streams_opened(), 1);
}

TEST_F(StreamCallsTest, ABrokenStreamFailsItsCallsAndTheNextCallReconnects) {
  Serve(true);
  const int port = server_->port();
  StreamCallsOptions one;
  one.streams = 1;
  auto calls = MakeCalls(one);
  Start(calls.get(), "warm", "0:warm");
  ASSERT_TRUE(WaitFor(1));
  Start(calls.get(), "cut", "1500:cut");
  Pump(absl::Milliseconds(100));
  server_.reset();  // the server goes away with the call in flight
  ASSERT_TRUE(WaitFor(2));
  EXPECT_NE(results_["cut"].code, grpc::StatusCode::OK);
  EXPECT_NE(results_["cut"].code, grpc::StatusCode::DEADLINE_EXCEEDED) << "failed when cut";

  Serve(true, port);
  // Like unary calls, the first ones may fail while the channel reconnects; one soon succeeds.
  bool ok = false;
  for (int attempt = 0; attempt < 50 && !ok; ++attempt) {
    const std::string key = absl::StrCat("again", attempt);
    Start(calls.get(), key, "0:again");
    ASSERT_TRUE(WaitFor(results_.size() + 1));
    ok = results_[key].code == grpc::StatusCode::OK;
    if (!ok) Pump(absl::Milliseconds(100));
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(server_->streams_opened(), 1);
}

TEST_F(StreamCallsTest, AnAgedStreamTakesNoNewCallsAndClosesOnceAnswered) {
  Serve(true);
  StreamCallsOptions one;
  one.streams = 1;
  one.max_age = absl::Milliseconds(200);
  one.sweep = absl::Milliseconds(20);
  auto calls = MakeCalls(one);
  Start(calls.get(), "old", "400:old");  // still out when its stream is retired
  Pump(absl::Milliseconds(250));
  Start(calls.get(), "new", "0:new");  // on a new stream
  ASSERT_TRUE(WaitFor(1));
  EXPECT_EQ(order_[0], "new");
  EXPECT_EQ(calls->open_streams(), 2) << "the old one drains";
  ASSERT_TRUE(WaitFor(2));
  EXPECT_EQ(results_["old"].code, grpc::StatusCode::OK) << results_["old"].message;
  EXPECT_EQ(results_["old"].echoed, "old");
  EXPECT_TRUE(loop_.RunUntil([&] { return calls->open_streams() == 1; }, absl::Seconds(5)))
      << "the drained stream closes";
  EXPECT_EQ(server_->streams_opened(), 2);
}

TEST_F(StreamCallsTest, AServerWithoutTheStreamMethodGetsEveryCallUnary) {
  Serve(false);
  auto calls = MakeCalls();
  // The first calls go out before the stream's UNIMPLEMENTED comes back: they are re-sent.
  for (int i = 0; i < 10; ++i) Start(calls.get(), absl::StrCat("c", i), absl::StrCat("0:t", i));
  ASSERT_TRUE(WaitFor(10));
  for (int i = 10; i < 20; ++i) Start(calls.get(), absl::StrCat("c", i), absl::StrCat("0:t", i));
  ASSERT_TRUE(WaitFor(20));
  for (int i = 0; i < 20; ++i) {
    const Result& r = results_[absl::StrCat("c", i)];
    EXPECT_EQ(r.code, grpc::StatusCode::OK) << i << ": " << r.message;
    EXPECT_EQ(r.echoed, absl::StrCat("t", i));
  }
  EXPECT_EQ(server_->unary_calls(), 20);
}

}  // namespace
}  // namespace xc
