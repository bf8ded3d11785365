#include "core/redis/instrumented_redis_client.h"

namespace xc {

InstrumentedRedisClient::InstrumentedRedisClient(std::unique_ptr<AsyncRedisClient> inner,
                                                 metrics::Registry* registry,
                                                 const std::string& prefix)
    : inner_(std::move(inner)),
      seconds_(&registry
                    ->AddHistogram(prefix + "_redis_seconds",
                                   "Redis round trips (one command or one pipeline).")
                    .Add({})),
      errors_(&registry->AddCounter(prefix + "_redis_errors_total", "Failed Redis round trips.")) {}

void InstrumentedRedisClient::Count(const absl::Status& status) {
  if (status.ok() || absl::IsAborted(status)) return;
  const char* kind = absl::IsUnavailable(status)        ? "unavailable"
                     : absl::IsDeadlineExceeded(status) ? "timeout"
                                                        : "reply";
  errors_->Add({{"kind", kind}}).Increment();
}

void InstrumentedRedisClient::Send(std::vector<RedisArgv> commands, RedisCallback done) {
  const int64_t start = EventLoop::NowNanos();
  inner_->Send(std::move(commands), [this, start, done = std::move(done)](
                                        absl::StatusOr<RedisResults> r) mutable {
    seconds_->Observe(static_cast<double>(EventLoop::NowNanos() - start) * 1e-9);
    Count(r.status());
    if (r.ok()) {
      for (const absl::StatusOr<RedisReply>& each : *r) Count(each.status());
    }
    done(std::move(r));
  });
}

}  // namespace xc
