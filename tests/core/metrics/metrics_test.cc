// Golden tests of the Prometheus text exposition format, and the exposer over real HTTP.
#include "core/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(ExposerTest, ServesMetricsLivenessAndReadiness) {
  Registry r;
  AddBuildInfo(&r, "xc_test");
  bool ready = false;
  int port = FreePort();
  absl::StatusOr<std::unique_ptr<Exposer>> e =
      Exposer::Start("127.0.0.1:" + std::to_string(port), &r, [&] { return ready; });
  ASSERT_TRUE(e.ok()) << e.status();
  std::string metrics = Get(port, "/metrics");
  EXPECT_NE(metrics.find("200 OK"), std::string::npos);
  EXPECT_NE(metrics.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.find("xc_test_build_info{version=\"0.1.0\"} 1"), std::string::npos);
  EXPECT_NE(Get(port, "/livez").find("200 OK"), std::string::npos);
  EXPECT_NE(Get(port, "/readyz").find("503"), std::string::npos);
  ready = true;
  EXPECT_NE(Get(port, "/readyz").find("200 OK"), std::string::npos);
}

}  // namespace
}  // namespace xc::metrics
