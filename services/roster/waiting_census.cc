#include "services/roster/waiting_census.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/base/log.h"

namespace xc {
namespace {
absl::StatusOr<int64_t> CountOnShard(RedisClient& redis, int scan_batch);
}  // namespace

absl::StatusOr<int64_t> CountWaitingRequests(RedisClient& redis, int scan_batch) {
  int64_t total = 0;
  for (RedisClient* shard : redis.Shards()) {
    absl::StatusOr<int64_t> count = CountOnShard(*shard, scan_batch);
    if (!count.ok()) return count.status();
    total += *count;
  }
  return total;
}

namespace {
absl::StatusOr<int64_t> CountOnShard(RedisClient& redis, int scan_batch) {
  int64_t total = 0;
  std::string cursor = "0";
  do {
    absl::StatusOr<RedisReply> page = redis.Command(
        {"SCAN", cursor, "MATCH", "*:pending", "COUNT", absl::StrCat(scan_batch), "TYPE", "hash"});
    if (!page.ok()) return page.status();
    if (page->type != RedisReply::Type::kArray || page->elements.size() != 2) {
      return absl::InternalError("SCAN: unexpected reply shape");
    }
    cursor = page->elements[0].str;
    std::vector<RedisArgv> lengths;
    for (const RedisReply& key : page->elements[1].elements) lengths.push_back({"HLEN", key.str});
    if (lengths.empty()) continue;
    absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(lengths);
    if (!replies.ok()) return replies.status();
    for (const RedisReply& r : *replies) total += r.integer;
  } while (cursor != "0");
  return total;
}
}  // namespace

WaitingCensus::WaitingCensus(RedisClient* redis, metrics::Registry* registry, absl::Duration interval)
    : redis_(redis),
      gauge_(&registry
                  ->AddGauge("xc_roster_waiting_requests",
                             "Subscription requests stored for contacts who have not answered "
                             "(whole cluster, refreshed by a background census).")
                  .Add({})),
      failures_(&registry
                     ->AddCounter("xc_roster_waiting_census_failures_total",
                                  "Census passes of the waiting requests that failed.")
                     .Add({})),
      interval_(interval),
      thread_([this] { Run(); }) {}

WaitingCensus::~WaitingCensus() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void WaitingCensus::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    absl::StatusOr<int64_t> count = CountWaitingRequests(*redis_);
    if (count.ok()) {
      gauge_->Set(static_cast<double>(*count));
    } else {
      failures_->Increment();
      XC_LOG(WARNING) << "waiting-request census failed: " << count.status();
    }
    lock.lock();
    cv_.wait_for(lock, absl::ToChronoMilliseconds(interval_), [this] { return stop_; });
  }
}

}  // namespace xc
