// The Redis Cluster client against a real local Redis Cluster (3 masters from Debian's
// redis-server): slot hashing agrees with the server, commands and pipelines reach the owning
// master, scripts follow their keys, and no acknowledged write is lost while slots are
// resharded under traffic (MOVED and ASK followed).
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/redis/redis_cluster_client.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"

namespace xc {
namespace {

TEST(RedisClusterSlotTest, HashTagsAndKnownValues) {
  EXPECT_EQ(RedisClusterSlot("123456789"), 12739);  // the CRC16 check value 0x31C3
  EXPECT_EQ(RedisClusterSlot("{alice@example.com}:roster"),
            RedisClusterSlot("{alice@example.com}:pending"));
  EXPECT_EQ(RedisClusterSlot("{alice@example.com}:roster"), RedisClusterSlot("alice@example.com"));
  EXPECT_EQ(RedisClusterSlot("foo{}{bar}"), RedisClusterSlot("foo{}{bar}"));
  EXPECT_NE(RedisClusterSlot("foo{}{bar}"), RedisClusterSlot("bar"));  // empty tag: whole key
  EXPECT_EQ(RedisClusterSlot("foo{{bar}}zap"), RedisClusterSlot("{bar"));
  EXPECT_EQ(RedisClusterSlot("foo{bar}{zap}"), RedisClusterSlot("bar"));
}

TEST(RedisClusterSlotTest, CommandKeys) {
  EXPECT_EQ(RedisCommandKey({"HGET", "k", "f"}), "k");
  EXPECT_EQ(RedisCommandKey({"EVALSHA", "abc", "2", "k1", "k2", "arg"}), "k1");
  EXPECT_EQ(RedisCommandKey({"eval", "return 1", "0"}), std::nullopt);
  EXPECT_EQ(RedisCommandKey({"PING"}), std::nullopt);
  EXPECT_EQ(RedisCommandKey({"SCAN", "0", "MATCH", "*"}), std::nullopt);
  EXPECT_EQ(RedisCommandKey({"ECHO", "x"}), std::nullopt);
}

class RedisClusterClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::RedisCluster(3); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    cluster_->FlushAll();
    client_ = cluster_->NewClient();
  }

  static testing::RedisCluster* cluster_;
  std::unique_ptr<RedisClient> client_;
};

testing::RedisCluster* RedisClusterClientTest::cluster_ = nullptr;

TEST_F(RedisClusterClientTest, SlotsAgreeWithTheServer) {
  std::unique_ptr<RedisClient> node = cluster_->NodeClient(0);
  for (int i = 0; i < 500; ++i) {
    std::string key = absl::StrCat(i % 2 ? "{user" : "key", i, i % 2 ? "@d}:x" : "");
    absl::StatusOr<RedisReply> slot = node->Command({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(RedisClusterSlot(key), slot->integer) << key;
  }
}

TEST_F(RedisClusterClientTest, CommandsReachTheOwningMaster) {
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(client_->Command({"SET", absl::StrCat("k", i), absl::StrCat(i)}).ok());
  }
  int64_t total = 0;
  for (int n = 0; n < cluster_->size(); ++n) {
    absl::StatusOr<RedisReply> size = cluster_->NodeClient(n)->Command({"DBSIZE"});
    ASSERT_TRUE(size.ok());
    EXPECT_GT(size->integer, 0) << "node " << n << " got no key";
    total += size->integer;
  }
  EXPECT_EQ(total, 300);
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<RedisReply> v = client_->Command({"GET", absl::StrCat("k", i)});
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->str, absl::StrCat(i));
  }
}

TEST_F(RedisClusterClientTest, PipelinesSpanNodesAndKeepOrder) {
  std::vector<RedisArgv> commands;
  for (int i = 0; i < 100; ++i) commands.push_back({"SET", absl::StrCat("p", i), absl::StrCat(i)});
  for (int i = 0; i < 100; ++i) commands.push_back({"GET", absl::StrCat("p", i)});
  absl::StatusOr<std::vector<RedisReply>> replies = client_->Pipeline(commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 200u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*replies)[100 + i].str, absl::StrCat(i));

  // An error reply fails only its own command in PipelineEach, the whole call in Pipeline.
  absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> each =
      client_->PipelineEach({{"GET", "p1"}, {"HGET", "p2", "f"}, {"GET", "p3"}});
  ASSERT_TRUE(each.ok());
  EXPECT_TRUE((*each)[0].ok());
  EXPECT_FALSE((*each)[1].ok());
  EXPECT_EQ((*each)[2]->str, "3");
  EXPECT_FALSE(client_->Pipeline({{"GET", "p1"}, {"HGET", "p2", "f"}}).ok());
}

TEST_F(RedisClusterClientTest, ScriptsRunWhereTheirKeysLive) {
  RedisScript script("redis.call('HSET', KEYS[1], 'a', ARGV[1]); "
                     "return redis.call('HINCRBY', KEYS[2], 'n', 1)");
  for (int i = 0; i < 30; ++i) {
    std::string tag = UserTag(absl::StrCat("u", i, "@d"));
    absl::StatusOr<RedisReply> r = script.Run(*client_, {tag + ":a", tag + ":b"}, {"x"});
    ASSERT_TRUE(r.ok()) << r.status();  // NOSCRIPT on each node falls back to EVAL
    EXPECT_EQ(r->integer, 1);
  }
}

TEST_F(RedisClusterClientTest, ShardsAreTheMastersAndScanCoversAll) {
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(client_->Command({"SET", absl::StrCat("s", i), "1"}).ok());
  std::vector<RedisClient*> shards = client_->Shards();
  ASSERT_EQ(shards.size(), 3u);
  int found = 0;
  for (RedisClient* shard : shards) {
    std::string cursor = "0";
    do {
      absl::StatusOr<RedisReply> page = shard->Command({"SCAN", cursor, "COUNT", "50"});
      ASSERT_TRUE(page.ok()) << page.status();
      cursor = page->elements[0].str;
      found += static_cast<int>(page->elements[1].elements.size());
    } while (cursor != "0");
  }
  EXPECT_EQ(found, 200);
}

// Writers keep incrementing counters (plain commands, pipelines and scripts) while slots move
// between masters twice; every increment a writer saw acknowledged must be in Redis afterwards.
TEST_F(RedisClusterClientTest, NoAcknowledgedWriteIsLostWhileSlotsMove) {
  constexpr int kKeys = 400;
  std::vector<std::atomic<int64_t>> acked(kKeys);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  RedisScript incr("return redis.call('HINCRBY', KEYS[1], 'n', 1)");
  auto writer = [&](int id) {
    std::unique_ptr<RedisClient> c = cluster_->NewClient();
    for (int round = 0; !stop.load(); ++round) {
      int k = (round * 7 + id * 13) % kKeys;
      std::string key = absl::StrCat("{c", k, "}:n");
      absl::Status s;
      if (round % 3 == 0) {
        s = c->Command({"HINCRBY", key, "n", "1"}).status();
      } else if (round % 3 == 1) {
        s = incr.Run(*c, {key}, {}).status();
      } else {
        int k2 = (k + 1) % kKeys;
        absl::StatusOr<std::vector<RedisReply>> r = c->Pipeline(
            {{"HINCRBY", key, "n", "1"}, {"HINCRBY", absl::StrCat("{c", k2, "}:n"), "n", "1"}});
        s = r.status();
        if (s.ok()) acked[k2].fetch_add(1);
      }
      if (s.ok()) {
        acked[k].fetch_add(1);
      } else {
        errors.fetch_add(1);
        ADD_FAILURE() << s;
      }
    }
  };
  const RedisClusterRedirects before = RedisClusterRedirectCounts();
  std::vector<std::thread> writers;
  for (int i = 0; i < 3; ++i) writers.emplace_back(writer, i);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(cluster_->Reshard(0, 1, 2000));
  EXPECT_TRUE(cluster_->Reshard(1, 2, 3000));
  absl::SleepFor(absl::Milliseconds(200));
  stop = true;
  for (std::thread& t : writers) t.join();

  std::unique_ptr<RedisClient> fresh = cluster_->NewClient();
  int64_t total = 0;
  for (int k = 0; k < kKeys; ++k) {
    absl::StatusOr<RedisReply> v = fresh->Command({"HGET", absl::StrCat("{c", k, "}:n"), "n"});
    ASSERT_TRUE(v.ok()) << v.status();
    int64_t stored = v->is_nil() ? 0 : std::stoll(v->str);
    EXPECT_EQ(stored, acked[k].load()) << "key " << k;
    total += stored;
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(total, 1000) << "too little traffic ran during the resharding to prove anything";
  const RedisClusterRedirects after = RedisClusterRedirectCounts();
  EXPECT_GT(after.moved, before.moved) << "the writers never followed a MOVED";
  std::printf("reshard under traffic: %lld increments acknowledged, %d errors, 0 lost; "
              "redirects followed: %lld MOVED, %lld ASK, %lld TRYAGAIN\n",
              static_cast<long long>(total), errors.load(),
              static_cast<long long>(after.moved - before.moved),
              static_cast<long long>(after.ask - before.ask),
              static_cast<long long>(after.retry - before.retry));
}

TEST(RedisClusterFailureTest, ADeadMasterFailsOnlyItsSlotsAndFast) {
  testing::RedisCluster cluster(3);
  std::unique_ptr<RedisClient> client = cluster.NewClient();
  std::map<int, std::string> key_on_node;  // node index -> a key it owns
  for (int i = 0; key_on_node.size() < 3 && i < 1000; ++i) {
    std::string key = absl::StrCat("f", i);
    ASSERT_TRUE(client->Command({"SET", key, "1"}).ok());
    for (int n = 0; n < 3; ++n) {
      absl::StatusOr<RedisReply> e = cluster.NodeClient(n)->Command({"EXISTS", key});
      if (e.ok() && e->integer == 1) key_on_node.emplace(n, key);
    }
  }
  ASSERT_EQ(key_on_node.size(), 3u);
  cluster.Kill(2);
  absl::Time start = absl::Now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(client->Command({"GET", key_on_node[2]}).ok());
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(3)) << "calls to a dead node must fail fast";
  EXPECT_TRUE(client->Command({"GET", key_on_node[0]}).ok());
  EXPECT_TRUE(client->Command({"GET", key_on_node[1]}).ok());
  // A client seeded with the dead node among live ones still starts and serves.
  absl::StatusOr<std::unique_ptr<RedisClient>> seeded = ConnectRedis(
      absl::StrCat("cluster://127.0.0.1:", cluster.port(2), ",127.0.0.1:", cluster.port(0)));
  ASSERT_TRUE(seeded.ok());
  EXPECT_TRUE((*seeded)->Command({"GET", key_on_node[1]}).ok());
}

}  // namespace
}  // namespace xc
