#pragma once

#include <memory>

#include "core/metrics/metrics.h"
#include "core/redis/redis_client.h"

namespace xc {

// A RedisClient decorator that times every round trip (the service→Redis hop) and counts
// failures by kind. Owns nothing but the wrapped client.
class InstrumentedRedisClient final : public RedisClient {
 public:
  InstrumentedRedisClient(std::unique_ptr<RedisClient> inner, metrics::Registry* registry,
                          const std::string& prefix);
  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override;
  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgv>& commands) override;
  absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> PipelineEach(
      const std::vector<RedisArgv>& commands) override;
  // The wrapped client's shards (keyspace walks are not timed).
  std::vector<RedisClient*> Shards() override { return inner_->Shards(); }

 private:
  void Count(const absl::Status& status);

  std::unique_ptr<RedisClient> inner_;
  metrics::Histogram* seconds_;
  metrics::Family<metrics::Counter>* errors_;
};

}  // namespace xc
