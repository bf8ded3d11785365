#include "core/redis/instrumented_redis_client.h"

namespace xc {

InstrumentedRedisClient::InstrumentedRedisClient(std::unique_ptr<RedisClient> inner,
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

absl::StatusOr<RedisReply> InstrumentedRedisClient::Command(const RedisArgv& argv) {
  metrics::ScopedTimer timer(seconds_);
  absl::StatusOr<RedisReply> r = inner_->Command(argv);
  Count(r.status());
  return r;
}

absl::StatusOr<std::vector<RedisReply>> InstrumentedRedisClient::Pipeline(
    const std::vector<RedisArgv>& commands) {
  metrics::ScopedTimer timer(seconds_);
  absl::StatusOr<std::vector<RedisReply>> r = inner_->Pipeline(commands);
  Count(r.status());
  return r;
}

absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> InstrumentedRedisClient::PipelineEach(
    const std::vector<RedisArgv>& commands) {
  metrics::ScopedTimer timer(seconds_);
  absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> r = inner_->PipelineEach(commands);
  Count(r.status());
  if (r.ok()) {
    for (const absl::StatusOr<RedisReply>& each : *r) Count(each.status());
  }
  return r;
}

}  // namespace xc
