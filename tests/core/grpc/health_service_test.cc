// HealthService over real gRPC: Check answers the server's status for "" and NOT_FOUND for any
// other name; Watch sends the status at once and again at each change; a watcher the client
// cancels leaves nothing running.
#include "core/grpc/health_service.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "core/event/event_loop.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "tests/support/test_grpc_server.h"

namespace xc {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_thread_ = std::thread([this] { loop_.Run(); });
    server_ = std::make_unique<TestGrpcServer>(&loop_);
    const int port = server_->Start({&health_});
    ASSERT_NE(port, 0);
    stub_ = Health::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_->Shutdown();
    EXPECT_EQ(server_->queue()->live_calls(), 0) << "every call ended";
    loop_.Stop();
    loop_thread_.join();
  }

  grpc::Status Check(const std::string& service, HealthCheckResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HealthCheckRequest request;
    request.set_service(service);
    return stub_->Check(&context, request, response);
  }

  EventLoop loop_;
  std::thread loop_thread_;
  HealthService health_;
  std::unique_ptr<TestGrpcServer> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(HealthServiceTest, CheckFollowsTheServingStatus) {
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING) << "until told otherwise";
  health_.SetServing(true);
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  health_.SetServing(false);
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, CheckOfAnUnknownServiceIsNotFound) {
  HealthCheckResponse response;
  EXPECT_EQ(Check("no.such.Service", &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(HealthServiceTest, WatchSendsTheStatusThenEachChange) {
  health_.SetServing(true);
  grpc::ClientContext context;
  HealthCheckRequest request;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  health_.SetServing(false);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  health_.SetServing(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The watcher's call is gone on the server too: only the next, unarrived, requests remain.
  for (int i = 0; i < 2000 && server_->queue()->live_calls() > 2; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(server_->queue()->live_calls(), 2) << "one Check and one Watch requested";
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceSaysSo) {
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("no.such.Service");
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  context.TryCancel();
}

}  // namespace
}  // namespace xc
