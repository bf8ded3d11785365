#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/event/event_loop.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/hiredis_client.h"
#include "core/redis/redis_client.h"

namespace xc {

// The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag (the part between the first
// '{' and the next '}', when not empty) or of the whole key, modulo 16384.
uint16_t RedisClusterSlot(absl::string_view key);

// The key a command is routed by: the first key of EVAL/EVALSHA (none when it has no keys),
// nothing for keyless commands (PING, SCAN, INFO, ...), else the first argument.
std::optional<absl::string_view> RedisCommandKey(const RedisArgv& argv);

struct RedisClusterOptions {
  std::vector<std::string> seeds;     // "host:port" of any nodes; the rest is discovered
  RedisConnectionOptions connection;  // AUTH, timeouts and backoff for every node (host/port unused)
  absl::Duration refresh_interval = absl::Seconds(10);  // background slot-map refresh
  int max_redirects = 8;              // MOVED/ASK/TRYAGAIN hops per command
  absl::Duration max_backoff = absl::Seconds(1);  // between TRYAGAIN rounds
};

// An AsyncRedisClient for Redis Cluster on `loop`. Routes each command to the master owning its
// key's slot (from CLUSTER SLOTS, refreshed in the background and after every MOVED), follows
// MOVED and ASK redirects (ASKING in the same pipeline), waits out TRYAGAIN/CLUSTERDOWN with
// growing backoff, and splits pipelines by node, retrying only the redirected commands. A node
// that refuses connections fails fast for a growing interval while the slot map is refreshed,
// so a failover is picked up without hammering the dead address. Commands are never replayed
// after a transport failure (they may have run); callers retry. Every multi-key command and
// script must touch one slot (our keys share the user's tag).
std::unique_ptr<AsyncRedisClient> NewAsyncRedisClusterClient(EventLoop* loop,
                                                             RedisClusterOptions options);

// Redirects followed by every cluster client of this process, by kind (for metrics and tests).
struct RedisClusterRedirects {
  int64_t moved = 0;
  int64_t ask = 0;
  int64_t retry = 0;  // TRYAGAIN / CLUSTERDOWN
};
RedisClusterRedirects RedisClusterRedirectCounts();

// "host:port" → a standalone client; "cluster://host:port[,host:port...]" → a cluster client
// seeded with those nodes; on `loop`. `base` carries AUTH and timeouts.
absl::StatusOr<std::unique_ptr<AsyncRedisClient>> ConnectAsyncRedis(
    EventLoop* loop, absl::string_view address, RedisConnectionOptions base = {});

// The same behind the blocking RedisClient interface, with a loop thread of its own (for tools
// and threads that are not a loop's).
absl::StatusOr<std::unique_ptr<RedisClient>> ConnectRedis(absl::string_view address,
                                                          RedisConnectionOptions base = {});

}  // namespace xc
