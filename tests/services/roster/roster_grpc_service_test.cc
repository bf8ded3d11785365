// The roster service's gRPC surface over real sockets: the roster service and a presence router
// stand-in (a gRPC server in this process that records every DispatchBatch) on loopback, the
// store on a real redis-server. What is checked here is the order of one session's inputs in a
// batch: their state changes are stored together (first reads in one round trip, writes in
// stream order), their effects leave as one sequence the router runs in order, and a flow of
// it that fails is sent again with the flows after it.
#include "services/roster/roster_grpc_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
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
#include "tests/services/roster/roster_redis_fixture.h"
#include "tests/support/test_grpc_server.h"

namespace xc {
namespace {

using Clock = std::chrono::steady_clock;
using xmpp::presence::v1::DispatchBatchRequest;
using xmpp::presence::v1::DispatchBatchResponse;
using xmpp::store::v1::RosterItemRecord;

// Answers every flow with OK (or as `fail_with` says). The first call is held for
// `first_call_delay`; just before it is answered, the user's roster entry for `watched_contact` is
// read from Redis.
class RecordingRouter final : public xmpp::presence::v1::PresenceRouter::Service {
 public:
  struct Call {
    Clock::time_point arrived;
    Clock::time_point answered;
    std::vector<std::string> delivered_to;  // per flow: the first delivery's recipient
    std::vector<bool> after_previous;       // per flow
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
      call.after_previous.push_back(flow.after_previous());
    }
    size_t index;
    {
      absl::MutexLock lock(&mu_);
      index = calls_.size();
      calls_.push_back(call);  // `answered` is set below
    }
    // As the router does: a failed flow leaves the later flows of its sequence unrun.
    bool sequence_failed = false;
    for (int f = 0; f < request->flows_size(); ++f) {
      if (!request->flows(f).after_previous()) sequence_failed = false;
      const int code = sequence_failed ? grpc::StatusCode::UNAVAILABLE
                       : fail_with       ? fail_with(index, f)
                                         : 0;
      xmpp::presence::v1::FlowResult* result = response->add_results();
      result->set_code(code);
      if (code != 0) result->set_message(sequence_failed ? "not run" : "refused");
      sequence_failed = sequence_failed || code != 0;
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
  // The gRPC code to answer flow `flow` of call `call` with (0: accepted); set before calls.
  std::function<int(size_t call, int flow)> fail_with;
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

xmpp::roster::v1::RosterInput Subscription(const std::string& session, const std::string& type,
                                           const std::string& to) {
  xmpp::roster::v1::RosterInput input;
  xmpp::roster::v1::SubscriptionRequest* s = input.mutable_subscription();
  s->set_session_jid(session);
  xmpp::stanza::v1::Stanza* p = s->mutable_presence();
  p->set_kind(xmpp::stanza::v1::KIND_PRESENCE);
  p->set_type(type);
  p->set_to(to);
  p->set_xml("<presence xmlns='jabber:client' type='" + type + "' to='" + to + "'/>");
  return input;
}

xmpp::roster::v1::RosterInput Subscribe(const std::string& session, const std::string& to) {
  return Subscription(session, "subscribe", to);
}

// Every command the Redis server runs, in order, from a MONITOR connection (one line each, as
// Redis prints them: `<time> [<db> <client>] "CMD" "arg" ...`).
class RedisMonitor {
 public:
  explicit RedisMonitor(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    const char kMonitor[] = "MONITOR\r\n";
    if (write(fd_, kMonitor, sizeof(kMonitor) - 1) != sizeof(kMonitor) - 1) return;
    std::string ok;
    while (ok.find("\r\n") == std::string::npos && ReadSome(&ok, 5000)) {
    }
    started_ = ok.rfind("+OK", 0) == 0;
    buffer_ = ok.substr(ok.find("\r\n") + 2);
  }
  ~RedisMonitor() {
    if (fd_ >= 0) close(fd_);
  }
  bool started() const { return started_; }
  // The commands seen until `quiet_ms` pass without one.
  std::vector<std::string> Drain(int quiet_ms) {
    while (ReadSome(&buffer_, quiet_ms)) {
    }
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t end; (end = buffer_.find("\r\n", start)) != std::string::npos; start = end + 2) {
      lines.push_back(buffer_.substr(start, end - start));
    }
    buffer_.erase(0, start);
    return lines;
  }

 private:
  bool ReadSome(std::string* into, int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return false;
    char buf[4096];
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) return false;
    into->append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool started_ = false;
  std::string buffer_;
};

// The index of the first line holding every one of `parts`, or -1.
int FirstWith(const std::vector<std::string>& lines, std::vector<std::string> parts) {
  for (size_t i = 0; i < lines.size(); ++i) {
    bool all = true;
    for (const std::string& p : parts) all = all && lines[i].find(p) != std::string::npos;
    if (all) return static_cast<int>(i);
  }
  return -1;
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
    AddAccounts({"u@d", "c1@d", "c2@d", "c3@d"});
  }

  // Starts the router stand-in and the roster service on loopback ports.
  void Start(std::chrono::milliseconds first_call_delay) {
    router_ = std::make_unique<RecordingRouter>(router_redis_.get(), "u@d", "c2@d",
                                                first_call_delay);
    const int router_port = ServeOnLoopback(router_.get(), &router_server_);
    ASSERT_NE(router_port, 0);
    router_stub_ = xmpp::presence::v1::PresenceRouter::NewStub(LoopbackChannel(router_port));
    consistency_ = std::make_unique<RosterConsistency>(store_.get(), processor_.get());
    loop_thread_ = std::thread([this] { loop_.Run(); });
    roster_server_ = std::make_unique<TestGrpcServer>(&loop_);
    service_ =
        std::make_unique<RosterGrpcService>(roster_server_->queue(), processor_.get(),
                                            consistency_.get(), router_stub_.get(), &registry_);
    const int roster_port = roster_server_->Start({service_.get()});
    ASSERT_NE(roster_port, 0);
    roster_stub_ = xmpp::roster::v1::RosterService::NewStub(LoopbackChannel(roster_port));
  }

  // One HandleBatch call of u's subscribes to `contacts`, in order; every input answered.
  xmpp::roster::v1::RosterBatchResponse SubscribeAll(const std::vector<std::string>& contacts) {
    xmpp::roster::v1::RosterBatchRequest request;
    for (const std::string& c : contacts) *request.add_inputs() = Subscribe("u@d/r", c);
    xmpp::roster::v1::RosterBatchResponse response;
    grpc::Status status = Batch(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), static_cast<int>(contacts.size()));
    return response;
  }

  // One HandleBatch call to the roster service, with a deadline.
  grpc::Status Batch(const xmpp::roster::v1::RosterBatchRequest& request,
                     xmpp::roster::v1::RosterBatchResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return roster_stub_->HandleBatch(&context, request, response);
  }

  // `owner`'s stored entry for `contact`, nullopt when there is none (a failed read or an
  // unreadable entry fails the test).
  std::optional<RosterItemRecord> StoredEntry(const std::string& owner,
                                              const std::string& contact) {
    absl::StatusOr<RedisReply> r = redis_->Command({"HGET", keys::Roster(owner), contact});
    if (!r.ok()) {
      ADD_FAILURE() << "HGET " << owner << " " << contact << ": " << r.status();
      return std::nullopt;
    }
    if (r->is_nil()) return std::nullopt;
    RosterItemRecord record;
    if (!record.ParseFromString(r->str)) {
      ADD_FAILURE() << "unreadable entry of " << owner << " for " << contact;
      return std::nullopt;
    }
    return record;
  }

  void TearDown() override {
    if (roster_server_) roster_server_->Shutdown();  // the dispatch streams to the router too
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
  std::unique_ptr<TestGrpcServer> roster_server_;
  std::unique_ptr<RosterGrpcService> service_;
  std::unique_ptr<xmpp::roster::v1::RosterService::Stub> roster_stub_;
};

// Flows to the first delivery's recipients, over every call, and whether each was joined to
// the one before it.
std::vector<std::string> Describe(const std::vector<RecordingRouter::Call>& calls) {
  std::vector<std::string> flows;
  for (const auto& c : calls) {
    for (size_t f = 0; f < c.delivered_to.size(); ++f) {
      flows.push_back((c.after_previous[f] ? "then " : "") + c.delivered_to[f]);
    }
  }
  return flows;
}

TEST_F(RosterGrpcServiceTest, OneSessionsInputsAreStoredTogetherAndLeaveAsOneSequence) {
  Start(std::chrono::milliseconds(300));
  xmpp::roster::v1::RosterBatchResponse response = SubscribeAll({"c1@d", "c2@d", "c3@d"});
  ASSERT_EQ(response.results_size(), 3);
  for (const auto& r : response.results()) EXPECT_EQ(r.code(), 0) << r.message();

  // The second input's state change was stored before the first one's effects left.
  std::optional<std::string> seen = router_->watched_entry_at_first_answer();
  ASSERT_TRUE(seen.has_value()) << "c2's entry was not stored by the first dispatch";
  RosterItemRecord record;
  ASSERT_TRUE(record.ParseFromString(*seen));
  EXPECT_TRUE(record.pending_out());

  // One call, the flows in the stream's order, each joined to the one before.
  std::vector<RecordingRouter::Call> calls = router_->calls();
  EXPECT_EQ(calls.size(), 1u);
  EXPECT_EQ(Describe(calls), (std::vector<std::string>{"c1@d", "then c2@d", "then c3@d"}));
}

TEST_F(RosterGrpcServiceTest, ALongChainGoesAsRunsOfFourInOrder) {
  AddAccounts({"c4@d", "c5@d", "c6@d"});
  Start(std::chrono::milliseconds(0));
  xmpp::roster::v1::RosterBatchResponse response =
      SubscribeAll({"c1@d", "c2@d", "c3@d", "c4@d", "c5@d", "c6@d"});
  ASSERT_EQ(response.results_size(), 6);
  for (const auto& r : response.results()) EXPECT_EQ(r.code(), 0) << r.message();
  // The second run leaves once the first was accepted, as a sequence of its own.
  std::vector<RecordingRouter::Call> calls = router_->calls();
  EXPECT_EQ(Describe(calls), (std::vector<std::string>{"c1@d", "then c2@d", "then c3@d",
                                                       "then c4@d", "c5@d", "then c6@d"}));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_GE(calls[1].arrived, calls[0].answered);
}

TEST_F(RosterGrpcServiceTest, AFlowThatFailsTransientlyIsSentAgainWithTheFlowsAfterIt) {
  Start(std::chrono::milliseconds(0));
  router_->fail_with = [](size_t call, int flow) {
    return call == 0 && flow == 1 ? grpc::StatusCode::UNAVAILABLE : 0;
  };
  xmpp::roster::v1::RosterBatchResponse response = SubscribeAll({"c1@d", "c2@d", "c3@d"});
  ASSERT_EQ(response.results_size(), 3);
  for (const auto& r : response.results()) EXPECT_EQ(r.code(), 0) << r.message();
  // c1's flow was accepted once; c2's and c3's went again, in order.
  EXPECT_EQ(Describe(router_->calls()),
            (std::vector<std::string>{"c1@d", "then c2@d", "then c3@d", "c2@d", "then c3@d"}));
}

TEST_F(RosterGrpcServiceTest, AFlowThatFailsForGoodIsAnsweredAndTheRestGoOn) {
  Start(std::chrono::milliseconds(0));
  router_->fail_with = [](size_t call, int flow) {
    return call == 0 && flow == 1 ? grpc::StatusCode::INVALID_ARGUMENT : 0;
  };
  xmpp::roster::v1::RosterBatchResponse response = SubscribeAll({"c1@d", "c2@d", "c3@d"});
  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).code(), 0);
  EXPECT_EQ(response.results(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(response.results(2).code(), 0) << response.results(2).message();
  EXPECT_EQ(Describe(router_->calls()),
            (std::vector<std::string>{"c1@d", "then c2@d", "then c3@d", "c3@d"}));
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
  for (const auto& c : calls) EXPECT_LT(c.arrived, calls[0].answered);
  // Nor is one's flow joined to the other's.
  std::vector<std::string> flows = Describe(calls);
  std::sort(flows.begin(), flows.end());
  EXPECT_EQ(flows, (std::vector<std::string>{"c1@d", "c2@d"}));
}

TEST_F(RosterGrpcServiceTest, LaterInputsOfASessionAreReadWithTheFirst) {
  Start(std::chrono::milliseconds(0));
  RedisMonitor monitor(server_->port());
  ASSERT_TRUE(monitor.started());
  xmpp::roster::v1::RosterBatchResponse response = SubscribeAll({"c1@d", "c2@d", "c3@d"});
  ASSERT_EQ(response.results_size(), 3);
  for (const auto& r : response.results()) EXPECT_EQ(r.code(), 0) << r.message();

  const std::vector<std::string> lines = monitor.Drain(300);
  const std::string roster = "\"" + keys::Roster("u@d") + "\"";
  const int first_write = FirstWith(lines, {"\"EVALSHA\"", roster, "\"c1@d\""});
  const int read_c2 = FirstWith(lines, {"\"HGET\"", roster, "\"c2@d\""});
  const int read_c3 = FirstWith(lines, {"\"HGET\"", roster, "\"c3@d\""});
  ASSERT_GE(first_write, 0) << "no write of u's entry for c1 seen";
  ASSERT_GE(read_c2, 0);
  ASSERT_GE(read_c3, 0);
  // Read before the first input's first write, not each after the input before it.
  EXPECT_LT(read_c2, first_write);
  EXPECT_LT(read_c3, first_write);
  // And written in the stream's order (so u's roster versions follow it).
  const int write_c2 = FirstWith(lines, {"\"EVALSHA\"", roster, "\"c2@d\""});
  const int write_c3 = FirstWith(lines, {"\"EVALSHA\"", roster, "\"c3@d\""});
  EXPECT_LT(first_write, write_c2);
  EXPECT_LT(write_c2, write_c3);
  // And still stored in order, each as a subscribe leaves it.
  for (const char* contact : {"c1@d", "c2@d", "c3@d"}) {
    std::optional<RosterItemRecord> record = StoredEntry("u@d", contact);
    ASSERT_TRUE(record.has_value()) << contact;
    EXPECT_TRUE(record->pending_out()) << contact;
  }
}

TEST_F(RosterGrpcServiceTest, TwoInputsForOneContactInAChainEndInTheSecondOnesState) {
  Start(std::chrono::milliseconds(0));
  xmpp::roster::v1::RosterBatchRequest request;
  *request.add_inputs() = Subscribe("u@d/r", "c1@d");
  *request.add_inputs() = Subscription("u@d/r", "unsubscribe", "c1@d");
  *request.add_inputs() = Subscribe("u@d/r", "c2@d");
  xmpp::roster::v1::RosterBatchResponse response;
  ASSERT_TRUE(Batch(request, &response).ok());
  ASSERT_EQ(response.results_size(), 3);
  for (const auto& r : response.results()) EXPECT_EQ(r.code(), 0) << r.message();
  // u's request to c1 was made and cancelled, in that order; c1 holds no waiting request.
  std::optional<RosterItemRecord> mine = StoredEntry("u@d", "c1@d");
  ASSERT_TRUE(mine.has_value());
  EXPECT_FALSE(mine->pending_out());
  EXPECT_TRUE(mine->in_roster());
  if (std::optional<RosterItemRecord> theirs = StoredEntry("c1@d", "u@d")) {
    EXPECT_FALSE(theirs->pending_in());
  }
}

}  // namespace
}  // namespace xc
