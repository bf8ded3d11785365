#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/metrics/metrics.h"
#include "core/redis/redis_client.h"

namespace xc {

// Counts the subscription requests waiting for their contacts (every `{u}:pending` hash, RFC
// 6121 §3.1.3 "store the request"): SCAN over the keyspace in batches, HLEN of each batch in one
// pipeline. O(keyspace) per pass, so it runs in the background at a low rate; the result feeds
// the gauge xc_roster_waiting_requests. With Redis Cluster each master is scanned in turn.
absl::StatusOr<int64_t> CountWaitingRequests(RedisClient& redis, int scan_batch = 1000);

// Refreshes `gauge` every `interval` on its own thread until destroyed. A failed pass leaves the
// last value and counts into xc_roster_waiting_census_failures_total.
class WaitingCensus {
 public:
  WaitingCensus(RedisClient* redis, metrics::Registry* registry, absl::Duration interval);
  ~WaitingCensus();
  WaitingCensus(const WaitingCensus&) = delete;
  WaitingCensus& operator=(const WaitingCensus&) = delete;

 private:
  void Run();

  RedisClient* redis_;
  metrics::Gauge* gauge_;
  metrics::Counter* failures_;
  absl::Duration interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace xc
