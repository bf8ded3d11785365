// The non-blocking Redis connection against a real redis-server: concurrent flows on one loop
// share one connection and get their own replies, an error reply fails only its command, a
// script survives a flushed script cache, a slow reply times out without wedging the
// connection, and a dead server fails calls fast until it is back.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/hiredis_client.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"

namespace xc {
namespace {

class AsyncRedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.FlushAll();
    options_.port = server_.port();
  }
  std::unique_ptr<AsyncRedisClient> Client() { return NewAsyncRedisClient(&loop_, options_); }

  static testing::RedisServer server_;
  EventLoop loop_;
  RedisConnectionOptions options_;
};

testing::RedisServer AsyncRedisClientTest::server_;

Task<absl::Status> SetThenGet(AsyncRedisClient* redis, int i) {
  const std::string key = absl::StrCat("k", i);
  // GCC 12 cannot keep a braced list alive across co_await in one statement: build commands
  // first.
  RedisArgv set_cmd = {"SET", key, absl::StrCat("v", i)};
  absl::StatusOr<RedisReply> set = co_await redis->Command(std::move(set_cmd));
  if (!set.ok()) co_return set.status();
  RedisArgv get_cmd = {"GET", key};
  absl::StatusOr<RedisReply> get = co_await redis->Command(std::move(get_cmd));
  if (!get.ok()) co_return get.status();
  if (get->str != absl::StrCat("v", i)) co_return absl::InternalError("got " + get->str);
  co_return absl::OkStatus();
}

TEST_F(AsyncRedisClientTest, ConcurrentFlowsShareOneConnection) {
  std::unique_ptr<AsyncRedisClient> redis = Client();
  int ok = 0, done = 0;
  constexpr int kFlows = 2000;
  for (int i = 0; i < kFlows; ++i) {
    Spawn(SetThenGet(redis.get(), i), [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      ok += s.ok() ? 1 : 0;
      ++done;
    });
  }
  ASSERT_TRUE(loop_.RunUntil([&] { return done == kFlows; }, absl::Seconds(20)));
  EXPECT_EQ(ok, kFlows);
  auto clients = [&]() -> Task<absl::StatusOr<RedisReply>> {
    RedisArgv cmd = {"CLIENT", "LIST"};
    co_return co_await redis->Command(std::move(cmd));
  };
  absl::StatusOr<RedisReply> list = RunToCompletion(&loop_, clients());
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> lines = absl::StrSplit(list->str, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << list->str;
}

TEST_F(AsyncRedisClientTest, AnErrorReplyFailsOnlyItsCommand) {
  std::unique_ptr<AsyncRedisClient> redis = Client();
  auto flow = [&]() -> Task<absl::StatusOr<RedisResults>> {
    std::vector<RedisArgv> cmds = {{"SET", "s", "1"}, {"HGET", "s", "f"}, {"GET", "s"}};
    co_return co_await redis->Each(std::move(cmds));
  };
  absl::StatusOr<RedisResults> r = RunToCompletion(&loop_, flow());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_TRUE(absl::IsInternal((*r)[1].status())) << (*r)[1].status();
  EXPECT_EQ((*r)[2]->str, "1");
  auto nil = [&]() -> Task<absl::StatusOr<RedisReply>> {
    RedisArgv cmd = {"GET", "missing"};
    co_return co_await redis->Command(std::move(cmd));
  };
  absl::StatusOr<RedisReply> missing = RunToCompletion(&loop_, nil());
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil()) << "a nil reply is a value, not an error";
}

TEST_F(AsyncRedisClientTest, ScriptsSurviveAFlushedScriptCache) {
  std::unique_ptr<AsyncRedisClient> redis = Client();
  RedisScript script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto flow = [&]() -> Task<absl::StatusOr<RedisReply>> {
    std::vector<std::string> keys = {"n"}, two = {"2"}, three = {"3"};
    RedisArgv flush = {"SCRIPT", "FLUSH"};
    absl::StatusOr<RedisReply> first = co_await RunScript(*redis, script, keys, two);
    if (!first.ok()) co_return first;
    (void)co_await redis->Command(std::move(flush));
    co_return co_await RunScript(*redis, script, keys, three);
  };
  absl::StatusOr<RedisReply> r = RunToCompletion(&loop_, flow());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->integer, 5);
}

TEST_F(AsyncRedisClientTest, ASlowReplyTimesOutAndTheNextCallReconnects) {
  options_.command_timeout = absl::Milliseconds(250);
  std::unique_ptr<AsyncRedisClient> redis = Client();
  auto flow = [&]() -> Task<std::pair<absl::Status, absl::Status>> {
    RedisArgv sleep = {"DEBUG", "SLEEP", "0.35"};  // blocks the whole server
    RedisArgv ping = {"PING"};
    absl::StatusOr<RedisReply> slow = co_await redis->Command(std::move(sleep));
    absl::StatusOr<RedisReply> next = co_await redis->Command(std::move(ping));
    co_return std::make_pair(slow.status(), next.status());
  };
  auto [slow, next] = RunToCompletion(&loop_, flow());
  EXPECT_TRUE(absl::IsDeadlineExceeded(slow)) << slow;
  EXPECT_TRUE(next.ok()) << next;
}

TEST_F(AsyncRedisClientTest, ADeadServerFailsCallsFastUntilItIsBack) {
  std::unique_ptr<AsyncRedisClient> redis = Client();
  auto ping = [&]() -> Task<absl::Status> {
    RedisArgv cmd = {"PING"};
    co_return (co_await redis->Command(std::move(cmd))).status();
  };
  ASSERT_TRUE(RunToCompletion(&loop_, ping()).ok());
  server_.Kill();
  const int64_t start = EventLoop::NowNanos();
  for (int i = 0; i < 20; ++i) {
    absl::Status s = RunToCompletion(&loop_, ping());
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  }
  EXPECT_LT(EventLoop::NowNanos() - start, 2000LL * 1000 * 1000) << "calls must fail fast";
  server_.Restart();
  absl::Status back;
  for (int i = 0; i < 100; ++i) {
    back = RunToCompletion(&loop_, ping());
    if (back.ok()) break;
    RunToCompletion(&loop_, [&]() -> Task<bool> {
      co_await Sleep(&loop_, absl::Milliseconds(50));
      co_return true;
    }());
  }
  EXPECT_TRUE(back.ok()) << back;
}

}  // namespace
}  // namespace xc
