// Golden tests of the Prometheus text exposition format, and the exposer over real HTTP.
#include "core/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/metrics/exposer.h"
#include "gtest/gtest.h"

namespace xc::metrics {
namespace {

TEST(MetricsTest, GoldenTextFormat) {
  Registry r;
  Family<Counter>& stanzas = r.AddCounter("xc_stanzas_in_total", "Stanzas received.\nPer kind.");
  stanzas.Add({{"kind", "presence"}}).Increment();
  stanzas.Add({{"kind", "presence"}}).Increment(2);
  stanzas.Add({{"kind", "a\"b\\c\nd"}}).Increment();
  r.AddGauge("xc_sessions", "Bound sessions.").Add({}).Set(3);
  Histogram& h = r.AddHistogram("xc_latency_seconds", "Hop latency.", {0.1, 1}).Add({{"hop", "redis"}});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(7);
  EXPECT_EQ(r.Serialize(),
            "# HELP xc_stanzas_in_total Stanzas received.\\nPer kind.\n"
            "# TYPE xc_stanzas_in_total counter\n"
            "xc_stanzas_in_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n"
            "xc_stanzas_in_total{kind=\"presence\"} 3\n"
            "# HELP xc_sessions Bound sessions.\n"
            "# TYPE xc_sessions gauge\n"
            "xc_sessions 3\n"
            "# HELP xc_latency_seconds Hop latency.\n"
            "# TYPE xc_latency_seconds histogram\n"
            "xc_latency_seconds_bucket{hop=\"redis\",le=\"0.1\"} 1\n"
            "xc_latency_seconds_bucket{hop=\"redis\",le=\"1\"} 2\n"
            "xc_latency_seconds_bucket{hop=\"redis\",le=\"+Inf\"} 3\n"
            "xc_latency_seconds_sum{hop=\"redis\"} 7.55\n"
            "xc_latency_seconds_count{hop=\"redis\"} 3\n");
}

TEST(MetricsTest, ScrapeHooksRunBeforeEverySerialization) {
  Registry r;
  Counter& turns = r.AddCounter("xc_turns_total", "Turns.").Add({});
  uint64_t kept_elsewhere = 0;
  uint64_t copied = 0;
  r.AddScrapeHook([&] {
    turns.Increment(static_cast<double>(kept_elsewhere - copied));
    copied = kept_elsewhere;
  });
  const std::string header = "# HELP xc_turns_total Turns.\n# TYPE xc_turns_total counter\n";
  EXPECT_EQ(r.Serialize(), header + "xc_turns_total 0\n");
  kept_elsewhere = 5;
  EXPECT_EQ(r.Serialize(), header + "xc_turns_total 5\n");
  kept_elsewhere = 7;
  EXPECT_EQ(r.Serialize(), header + "xc_turns_total 7\n");
  EXPECT_EQ(r.Serialize(), header + "xc_turns_total 7\n");
}

TEST(MetricsTest, AddingANameTwiceSharesOneFamily) {
  Registry r;
  Family<Counter>& first = r.AddCounter("xc_calls_total", "Calls.");
  Family<Counter>& again = r.AddCounter("xc_calls_total", "Ignored help.");
  EXPECT_EQ(&first, &again);
  first.Add({{"m", "a"}}).Increment();
  again.Add({{"m", "a"}}).Increment();
  again.Add({{"m", "b"}}).Increment();
  EXPECT_EQ(&r.AddHistogram("xc_s", "S.", {1}), &r.AddHistogram("xc_s", "S.", {2}));
  EXPECT_EQ(&r.AddGauge("xc_g", "G."), &r.AddGauge("xc_g", "G."));
  EXPECT_EQ(r.Serialize(),
            "# HELP xc_calls_total Calls.\n# TYPE xc_calls_total counter\n"
            "xc_calls_total{m=\"a\"} 2\nxc_calls_total{m=\"b\"} 1\n"
            "# HELP xc_s S.\n# TYPE xc_s histogram\n"
            "# HELP xc_g G.\n# TYPE xc_g gauge\n");
}

TEST(MetricsTest, CountersNeverGoDownGaugesDo) {
  Counter c;
  c.Increment(-5);
  EXPECT_EQ(c.Value(), 0);
  Gauge g;
  g.Increment(2);
  g.Decrement();
  EXPECT_EQ(g.Value(), 1);
}

TEST(MetricsTest, BoundaryValueFallsInItsBucket) {
  Histogram h({1, 2});
  h.Observe(1);
  h.Observe(2);
  EXPECT_EQ(h.BucketCounts(), (std::vector<uint64_t>{1, 1, 0}));
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` as is and reads the answer until the server closes.
std::string Exchange(int port, const std::string& request) {
  int fd = Connect(port);
  if (fd < 0) return "";
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string Get(int port, const std::string& path) {
  return Exchange(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

std::unique_ptr<Exposer> StartOnFreePort(const Registry* r, std::function<bool()> ready = {}) {
  absl::StatusOr<std::unique_ptr<Exposer>> e = Exposer::Start("127.0.0.1:0", r, std::move(ready));
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

TEST(ExposerTest, ServesMetricsLivenessAndReadiness) {
  Registry r;
  AddBuildInfo(&r, "xc_test");
  bool ready = false;
  std::unique_ptr<Exposer> e = StartOnFreePort(&r, [&] { return ready; });
  ASSERT_NE(e, nullptr);
  ASSERT_GT(e->port(), 0);
  std::string metrics = Get(e->port(), "/metrics");
  EXPECT_EQ(metrics.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << metrics;
  EXPECT_NE(metrics.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.find("xc_test_build_info{version=\"0.1.0\"} 1"), std::string::npos);
  EXPECT_NE(Get(e->port(), "/livez").find("200 OK"), std::string::npos);
  EXPECT_NE(Get(e->port(), "/readyz").find("503 Service Unavailable"), std::string::npos);
  ready = true;
  EXPECT_NE(Get(e->port(), "/readyz").find("200 OK"), std::string::npos);
  // A query string does not change the path (Prometheus may add one).
  EXPECT_NE(Get(e->port(), "/metrics?x=1").find("xc_test_build_info"), std::string::npos);
}

TEST(ExposerTest, ContentLengthMatchesTheBodyAndHeadSendsNoBody) {
  Registry r;
  AddBuildInfo(&r, "xc_test");
  std::unique_ptr<Exposer> e = StartOnFreePort(&r);
  ASSERT_NE(e, nullptr);
  std::string get = Get(e->port(), "/metrics");
  size_t end = get.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  std::string body = get.substr(end + 4);
  EXPECT_NE(get.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  std::string head = Exchange(e->port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head, get.substr(0, end + 4));
}

TEST(ExposerTest, AnswersBadRequestsWithTheirStatus) {
  Registry r;
  std::unique_ptr<Exposer> e = StartOnFreePort(&r);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(Get(e->port(), "/nope").rfind("HTTP/1.1 404 Not Found", 0), 0u);
  std::string post = Exchange(e->port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 Method Not Allowed", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(Exchange(e->port(), "hello\r\n\r\n").rfind("HTTP/1.1 400 Bad Request", 0), 0u);
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a');
  EXPECT_EQ(Exchange(e->port(), huge).rfind("HTTP/1.1 431", 0), 0u);
  // And still serves.
  EXPECT_NE(Get(e->port(), "/livez").find("200 OK"), std::string::npos);
}

TEST(ExposerTest, AClientThatSendsNothingDoesNotHoldOthersUp) {
  Registry r;
  std::unique_ptr<Exposer> e = StartOnFreePort(&r);
  ASSERT_NE(e, nullptr);
  int idle = Connect(e->port());
  ASSERT_GE(idle, 0);
  (void)!write(idle, "GET /livez HT", 13);  // half a request line, then silence
  EXPECT_NE(Get(e->port(), "/livez").find("200 OK"), std::string::npos);
  close(idle);
}

TEST(ExposerTest, RejectsAnAddressItCannotParse) {
  Registry r;
  EXPECT_FALSE(Exposer::Start("localhost:x", &r, {}).ok());
  EXPECT_FALSE(Exposer::Start("not-an-ip:9100", &r, {}).ok());
  EXPECT_FALSE(Exposer::Start("127.0.0.1:70000", &r, {}).ok());
}

TEST(ExposerTest, ListensOnIpv6Loopback) {
  Registry r;
  absl::StatusOr<std::unique_ptr<Exposer>> e = Exposer::Start("[::1]:0", &r, {});
  if (!e.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << e.status();
  EXPECT_GT((*e)->port(), 0);
}

}  // namespace
}  // namespace xc::metrics
