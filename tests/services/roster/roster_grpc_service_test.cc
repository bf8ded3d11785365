// The roster service's gRPC surface over real sockets: the roster service and a presence router
// stand-in (a gRPC server in this process that records every DispatchBatch) on loopback, the
// store on a real redis-server. What is checked here is the order of one session's inputs in a
// batch: each input's effects reach the router only after the previous input's were accepted,
// while the next input's state change does not wait for that.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/metrics/metrics.h"
#include "core/store/keys.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/xmpp/presence/v1/presence.grpc.pb.h"
#include "proto/xmpp/roster/v1/roster.grpc.pb.h"
#include "proto/xmpp/store/v1/records.pb.h"
#include "services/roster/roster_consistency.h"
#include "services/roster/roster_grpc_service.h"
#include "tests/services/roster/roster_redis_fixture.h"

namespace xc {
namespace {

using Clock = std::chrono::steady_clock;
using xmpp::presence::v1::DispatchBatchRequest;
using xmpp::presence::v1::DispatchBatchResponse;
using xmpp::store::v1::RosterItemRecord;

// Answers every flow with OK. The first call is held for `first_call_delay`; just before it is
// answered, the user's roster entry for `watched_contact` is read from Redis.
class RecordingRouter final : public xmpp::presence::v1::PresenceRouter::Service {
 public:
  struct Call {
    Clock::time_point arrived;
    Clock::time_point answered;
    std::vector<std::string> delivered_to;  // per flow: the first delivery's recipient
  };

  RecordingRouter(RedisClient* redis, std::string user, std::string watched_contact,
                  std::chrono::milliseconds first_call_delay)
      : redis_(redis),
        user_(std::move(user)),
        watched_(std::move(watched_contact)),
        delay_(first_call_delay) {}

  grpc::Status DispatchBatch(grpc::ServerContext*, const DispatchBatchRequest* request,
                             DispatchBatchResponse* response) override {
    Call call;
    call.arrived = Clock::now();
    for (const auto& flow : request->flows()) {
      std::string to;
      for (const auto& effect : flow.effects()) {
        if (effect.has_delivery() && effect.delivery().stanza().kind() ==
                                         xmpp::stanza::v1::KIND_PRESENCE) {
          to = effect.delivery().to();
          break;
        }
      }
      call.delivered_to.push_back(to);
      response->add_results();
    }
    size_t index;
    {
      absl::MutexLock lock(&mu_);
      index = calls_.size();
      calls_.push_back(call);  // `answered` is set below
    }
    if (index == 0) {
      std::this_thread::sleep_for(delay_);
      absl::StatusOr<RedisReply> entry =
          redis_->Command({"HGET", keys::Roster(user_), watched_});
      absl::MutexLock lock(&mu_);
      watched_entry_at_first_answer_ =
          entry.ok() && !entry->is_nil() ? std::optional<std::string>(entry->str) : std::nullopt;
    }
    absl::MutexLock lock(&mu_);
    calls_[index].answered = Clock::now();
    return grpc::Status::OK;
  }

  std::vector<Call> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::optional<std::string> watched_entry_at_first_answer() {
    absl::MutexLock lock(&mu_);
    return watched_entry_at_first_answer_;
  }

 private:
  RedisClient* redis_;
  const std::string user_;
  const std::string watched_;
  const std::chrono::milliseconds delay_;
  absl::Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> watched_entry_at_first_answer_ ABSL_GUARDED_BY(mu_);
};

xmpp::roster::v1::RosterInput Subscribe(const std::string& session, const std::string& to) {
  xmpp::roster::v1::RosterInput input;
  xmpp::roster::v1::SubscriptionRequest* s = input.mutable_subscription();
  s->set_session_jid(session);
  xmpp::stanza::v1::Stanza* p = s->mutable_presence();
  p->set_kind(xmpp::stanza::v1::KIND_PRESENCE);
  p->set_type("subscribe");
  p->set_to(to);
  p->set_xml("<presence xmlns='jabber:client' type='subscribe' to='" + to + "'/>");
  return input;
}

// Builds and starts a server for `service` on a free loopback port; returns the port (0 when
// it could not listen).
int ServeOnLoopback(grpc::Service* service, std::unique_ptr<grpc::Server>* server) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  *server = builder.BuildAndStart();
  return port;
}

std::shared_ptr<grpc::Channel> LoopbackChannel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

class RosterGrpcServiceTest : public RosterRedisFixture {
 protected:
  void SetUp() override {
    RosterRedisFixture::SetUp();
    router_redis_ = server_->NewClient();
    AddAccounts({"u@d", "c1@d", "c2@d"});
  }

  // Starts the router stand-in and the roster service on loopback ports.
  void Start(std::chrono::milliseconds first_call_delay) {
    router_ = std::make_unique<RecordingRouter>(router_redis_.get(), "u@d", "c2@d",
                                                first_call_delay);
    const int router_port = ServeOnLoopback(router_.get(), &router_server_);
    ASSERT_NE(router_port, 0);
    router_stub_ = xmpp::presence::v1::PresenceRouter::NewStub(LoopbackChannel(router_port));
    consistency_ = std::make_unique<RosterConsistency>(store_.get(), processor_.get());
    service_ = std::make_unique<RosterGrpcService>(&loop_, processor_.get(), consistency_.get(),
                                                   router_stub_.get(), &registry_);
    loop_thread_ = std::thread([this] { loop_.Run(); });
    const int roster_port = ServeOnLoopback(service_.get(), &roster_server_);
    ASSERT_NE(roster_port, 0);
    roster_stub_ = xmpp::roster::v1::RosterService::NewStub(LoopbackChannel(roster_port));
  }

  // One HandleBatch call to the roster service, with a deadline.
  grpc::Status Batch(const xmpp::roster::v1::RosterBatchRequest& request,
                     xmpp::roster::v1::RosterBatchResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return roster_stub_->HandleBatch(&context, request, response);
  }

  void TearDown() override {
    if (roster_server_) roster_server_->Shutdown();
    if (loop_thread_.joinable()) {
      loop_.Stop();
      loop_thread_.join();
    }
    if (router_server_) router_server_->Shutdown();
  }

  std::unique_ptr<RedisClient> router_redis_;
  std::unique_ptr<RecordingRouter> router_;
  std::unique_ptr<grpc::Server> router_server_;
  std::unique_ptr<xmpp::presence::v1::PresenceRouter::Stub> router_stub_;
  std::thread loop_thread_;
  metrics::Registry registry_;
  std::unique_ptr<RosterConsistency> consistency_;
  std::unique_ptr<RosterGrpcService> service_;
  std::unique_ptr<grpc::Server> roster_server_;
  std::unique_ptr<xmpp::roster::v1::RosterService::Stub> roster_stub_;
};

TEST_F(RosterGrpcServiceTest, OneSessionsInputsDispatchInOrderWhileTheNextOneIsStored) {
  Start(std::chrono::milliseconds(300));
  xmpp::roster::v1::RosterBatchRequest request;
  *request.add_inputs() = Subscribe("u@d/r", "c1@d");
  *request.add_inputs() = Subscribe("u@d/r", "c2@d");
  xmpp::roster::v1::RosterBatchResponse response;
  grpc::Status status = Batch(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).code(), 0) << response.results(0).message();
  EXPECT_EQ(response.results(1).code(), 0) << response.results(1).message();

  // The second input's state change was stored while the first one's effects were held.
  std::optional<std::string> seen = router_->watched_entry_at_first_answer();
  ASSERT_TRUE(seen.has_value()) << "c2's entry was not stored during the first dispatch";
  RosterItemRecord record;
  ASSERT_TRUE(record.ParseFromString(*seen));
  EXPECT_TRUE(record.pending_out());

  // Its effects left only after the first call was answered, in the stream's order.
  std::vector<RecordingRouter::Call> calls = router_->calls();
  std::vector<std::string> order;
  for (const auto& c : calls) order.insert(order.end(), c.delivered_to.begin(), c.delivered_to.end());
  EXPECT_EQ(order, (std::vector<std::string>{"c1@d", "c2@d"}));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_GE(calls[1].arrived, calls[0].answered);
}

TEST_F(RosterGrpcServiceTest, InputsOfDifferentSessionsDoNotWaitForEachOther) {
  Start(std::chrono::milliseconds(300));
  xmpp::roster::v1::RosterBatchRequest request;
  *request.add_inputs() = Subscribe("u@d/r", "c1@d");
  *request.add_inputs() = Subscribe("c1@d/r", "c2@d");
  xmpp::roster::v1::RosterBatchResponse response;
  ASSERT_TRUE(Batch(request, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  // Neither waited for the other's dispatch: both reached the router before the first call
  // (held 300 ms) was answered, in one call or in two.
  std::vector<RecordingRouter::Call> calls = router_->calls();
  size_t flows = 0;
  for (const auto& c : calls) {
    flows += c.delivered_to.size();
    EXPECT_LT(c.arrived, calls[0].answered);
  }
  EXPECT_EQ(flows, 2u);
}

}  // namespace
}  // namespace xc
