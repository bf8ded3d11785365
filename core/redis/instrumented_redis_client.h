#pragma once

#include <memory>
#include <string>

#include "core/metrics/metrics.h"
#include "core/redis/async_redis_client.h"

namespace xc {

// An AsyncRedisClient decorator that times every round trip (the service→Redis hop: one Send,
// from the call to its answer) and counts failures by kind. Owns the wrapped client.
class InstrumentedRedisClient final : public AsyncRedisClient {
 public:
  InstrumentedRedisClient(std::unique_ptr<AsyncRedisClient> inner, metrics::Registry* registry,
                          const std::string& prefix);
  void Send(std::vector<RedisArgv> commands, RedisCallback done) override;
  EventLoop* loop() const override { return inner_->loop(); }
  // The wrapped client's shards (keyspace walks are not timed).
  std::vector<AsyncRedisClient*> Shards() override { return inner_->Shards(); }

 private:
  void Count(const absl::Status& status);

  std::unique_ptr<AsyncRedisClient> inner_;
  metrics::Histogram* seconds_;
  metrics::Family<metrics::Counter>* errors_;
};

}  // namespace xc
