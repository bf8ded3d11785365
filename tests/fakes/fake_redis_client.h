#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/event/event_loop.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/redis_client.h"

namespace xc::testing {

// An in-memory RedisClient for unit tests: strings and hashes with the commands the services'
// readers use (GET SET DEL EXISTS HGET HSET HDEL HGETALL HVALS HKEYS HLEN). Anything else fails the
// call with Unimplemented, so a test never passes by accident.
class FakeRedisClient final : public RedisClient {
 public:
  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override;
  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgv>& commands) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::string> strings_;
  std::map<std::string, std::map<std::string, std::string>> hashes_;
};

// The async face of a blocking client for unit tests: every Send is answered at once, inside
// the call (so coroutines over it never wait for the loop).
class ImmediateAsyncRedisClient final : public AsyncRedisClient {
 public:
  ImmediateAsyncRedisClient(RedisClient* inner, EventLoop* loop) : inner_(inner), loop_(loop) {}
  void Send(std::vector<RedisArgv> commands, RedisCallback done) override {
    done(inner_->PipelineEach(commands));
  }
  EventLoop* loop() const override { return loop_; }

 private:
  RedisClient* inner_;
  EventLoop* loop_;
};

}  // namespace xc::testing
