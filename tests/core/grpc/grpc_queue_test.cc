// GrpcQueue over real gRPC on loopback: every completion runs as the loop's work, and shutdown
// ends every call (cancelling the client's own) before the queue closes, without waiting out
// the grace when nothing hangs, and refuses calls after it.
#include "core/grpc/grpc_queue.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/grpc/serve_on_loop.h"
#include "core/grpc/serve_stream.h"
#include "core/grpc/stream_calls.h"
#include "core/grpc/unary_call.h"
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

// HandleBatch answers at once, noting whether it ran as the loop's work; HandleBatchStream's
// frames wait 1.5 s before answering (a call that is in flight when the client shuts down).
class Service final : public QueuedService {
 public:
  explicit Service(EventLoop* loop) : loop_(loop) {}
  grpc::Service* grpc_service() override { return &async_; }
  void Serve(GrpcQueue* queue) override {
    ServeUnary(queue, &async_, &RosterService::AsyncService::RequestHandleBatch,
               [this](const RosterBatchRequest&, RosterBatchResponse*) -> Task<grpc::Status> {
                 if (!loop_->InLoopThread()) off_loop = true;
                 co_return grpc::Status::OK;
               });
    ServeStream(queue, &async_, &RosterService::AsyncService::RequestHandleBatchStream, nullptr,
                [this](const RosterBatchRequest&, RosterBatchResponse*) -> Task<grpc::Status> {
                  co_await Sleep(loop_, absl::Milliseconds(1500));
                  co_return grpc::Status::OK;
                });
  }
  std::atomic<bool> off_loop{false};

 private:
  EventLoop* const loop_;
  RosterService::AsyncService async_;
};

class GrpcQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_loop_thread_ = std::thread([this] { server_loop_.Run(); });
    server_ = std::make_unique<TestGrpcServer>(&server_loop_);
    port_ = server_->Start({&service_});
    ASSERT_NE(port_, 0);
    client_loop_thread_ = std::thread([this] { client_loop_.Run(); });
    client_queue_ = GrpcQueue::ForClients(&client_loop_);
    stub_ = RosterService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                       grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    client_queue_->Shutdown();
    client_loop_.Stop();
    client_loop_thread_.join();
    server_->Shutdown();
    server_loop_.Stop();
    server_loop_thread_.join();
  }

  // Runs `fn` on the client's loop and waits for it.
  template <typename Fn>
  void OnClientLoop(Fn fn) {
    std::atomic<bool> done{false};
    client_loop_.Post([&] {
      fn();
      done = true;
    });
    while (!done) absl::SleepFor(absl::Milliseconds(1));
  }

  StartUnaryFn<RosterBatchRequest, RosterBatchResponse> Unary() {
    RosterService::Stub* stub = stub_.get();
    return UnaryStart<RosterBatchRequest, RosterBatchResponse>(
        client_queue_.get(),
        [stub](grpc::ClientContext* c, const RosterBatchRequest& r, grpc::CompletionQueue* cq) {
          return stub->PrepareAsyncHandleBatch(c, r, cq);
        });
  }

  EventLoop server_loop_;
  std::thread server_loop_thread_;
  Service service_{&server_loop_};
  std::unique_ptr<TestGrpcServer> server_;
  int port_ = 0;
  EventLoop client_loop_;
  std::thread client_loop_thread_;
  std::unique_ptr<GrpcQueue> client_queue_;
  std::unique_ptr<RosterService::Stub> stub_;
};

TEST_F(GrpcQueueTest, CompletionsRunAsTheLoopsWork) {
  grpc::ClientContext context;
  RosterBatchRequest request;
  RosterBatchResponse response;
  std::atomic<bool> done{false};
  std::atomic<bool> on_loop{false};
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  StartUnaryFn<RosterBatchRequest, RosterBatchResponse> start = Unary();
  OnClientLoop([&] {
    start(&context, &request, &response, [&](grpc::Status status) {
      on_loop = client_loop_.InLoopThread();
      code = status.error_code();
      done = true;
    });
  });
  for (int i = 0; i < 5000 && !done; ++i) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(done);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_TRUE(on_loop) << "the client's completion ran as its loop's work";
  EXPECT_FALSE(service_.off_loop) << "the server's handler ran as its loop's work";
  EXPECT_EQ(client_queue_->live_calls(), 0);
}

TEST_F(GrpcQueueTest, ShutdownCancelsTheClientsStreamsAndDoesNotWaitOutTheGrace) {
  using Calls = StreamCalls<RosterBatchFrame, RosterBatchReply>;
  RosterService::Stub* stub = stub_.get();
  std::unique_ptr<Calls> calls;
  RosterBatchRequest request;
  RosterBatchResponse response;
  std::atomic<bool> done{false};
  grpc::StatusCode code = grpc::StatusCode::OK;
  OnClientLoop([&] {
    calls = std::make_unique<Calls>(
        client_queue_.get(),
        [stub](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
          return stub->PrepareAsyncHandleBatchStream(c, cq);
        },
        Unary());
    calls->Call(std::chrono::system_clock::now() + std::chrono::seconds(60), &request, &response,
                [&](grpc::Status status) {
                  code = status.error_code();
                  done = true;
                });
  });
  // The frame is with the server (its answer takes 1.5 s) when the client shuts down.
  for (int i = 0; i < 5000 && client_queue_->live_calls() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_EQ(client_queue_->live_calls(), 1);
  const absl::Time start = absl::Now();
  client_queue_->Shutdown(absl::Seconds(20));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "ended by cancelling, not by the answer";
  EXPECT_EQ(client_queue_->live_calls(), 0);
  EXPECT_TRUE(done);
  EXPECT_EQ(code, grpc::StatusCode::CANCELLED);
  OnClientLoop([&] { calls.reset(); });
}

TEST_F(GrpcQueueTest, CallsAfterShutdownFailWithoutTouchingTheQueue) {
  client_queue_->Shutdown();
  EXPECT_FALSE(client_queue_->Enter());
  grpc::ClientContext context;
  RosterBatchRequest request;
  RosterBatchResponse response;
  std::atomic<bool> done{false};
  grpc::StatusCode code = grpc::StatusCode::OK;
  StartUnaryFn<RosterBatchRequest, RosterBatchResponse> start = Unary();
  OnClientLoop([&] {
    start(&context, &request, &response, [&](grpc::Status status) {
      code = status.error_code();
      done = true;
    });
  });
  for (int i = 0; i < 5000 && !done; ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(done);
  EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace xc
