#pragma once

#include <initializer_list>
#include <memory>

#include "core/event/event_loop.h"
#include "core/redis/hiredis_client.h"
#include "core/store/keys.h"
#include "gtest/gtest.h"
#include "services/roster/roster_processor.h"
#include "services/roster/roster_store_redis.h"
#include "tests/support/redis_server.h"

namespace xc {

// The roster processor over the Redis store, on a real redis-server that the suite shares and
// each test starts empty. The store's client lives on `loop_`, which the test runs itself (on
// its own thread, or with RunToCompletion).
class RosterRedisFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new testing::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    server_->FlushAll();
    redis_ = server_->NewClient();
    RedisConnectionOptions options;
    options.port = server_->port();
    async_ = NewAsyncRedisClient(&loop_, options);
    store_ = NewRedisRosterStore(async_.get(), single_node_);
    processor_ = std::make_unique<RosterProcessor>(store_.get());
  }

  // Accounts exist for `users` (what the processor checks before an inbound step).
  void AddAccounts(std::initializer_list<const char*> users) {
    for (const char* user : users) {
      ASSERT_TRUE(redis_->Command({"HSET", keys::Account(user), "x", "1"}).ok());
    }
  }

  static inline testing::RedisServer* server_ = nullptr;
  // Whether the store may change both entries of a pair in one script (set before SetUp).
  bool single_node_ = true;
  EventLoop loop_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<AsyncRedisClient> async_;
  std::unique_ptr<RosterStore> store_;
  std::unique_ptr<RosterProcessor> processor_;
};

}  // namespace xc
