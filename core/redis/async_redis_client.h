#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/redis/redis_client.h"

namespace xc {

using RedisResults = std::vector<absl::StatusOr<RedisReply>>;
using RedisCallback = absl::AnyInvocable<void(absl::StatusOr<RedisResults>)>;

// Redis without blocking a thread: a standalone server (NewAsyncRedisClient) or a Redis Cluster
// (NewAsyncRedisClusterClient). Commands from every flow on the loop share one connection per
// node and leave in one write per loop turn, so concurrent flows pipeline for free.
//
// Loop thread only: Send() and the awaitables must be used on loop()'s thread, and callbacks
// run there. Errors as in RedisClient: transport failures Unavailable, timeouts
// DeadlineExceeded, error replies Internal (FailedPrecondition for NOSCRIPT). Commands are
// never replayed after a transport failure (they may have run); callers retry whole flows.
class AsyncRedisClient {
 public:
  virtual ~AsyncRedisClient() = default;
  // Sends `commands` (one round trip per node); `done` gets one result per command, where an
  // error reply fails only its own command, or one transport failure for all. `done` may run
  // before Send returns (a fast failure).
  virtual void Send(std::vector<RedisArgv> commands, RedisCallback done) = 0;
  virtual EventLoop* loop() const = 0;
  // One client per shard for commands that walk the keyspace (SCAN): this client on a
  // standalone server, one per master on a cluster. Owned by this client.
  virtual std::vector<AsyncRedisClient*> Shards() { return {this}; }

  // co_await Each(...) → absl::StatusOr<RedisResults>.
  auto Each(std::vector<RedisArgv> commands) {
    return AwaitCallback<absl::StatusOr<RedisResults>>(
        [this, commands = std::move(commands)](auto resume) mutable {
          Send(std::move(commands), std::move(resume));
        });
  }
  // co_await Command(...) → absl::StatusOr<RedisReply>.
  auto Command(RedisArgv argv) {
    return AwaitCallback<absl::StatusOr<RedisReply>>(
        [this, argv = std::move(argv)](auto resume) mutable {
          std::vector<RedisArgv> one;
          one.push_back(std::move(argv));
          Send(std::move(one), [resume = std::move(resume)](
                                   absl::StatusOr<RedisResults> r) mutable {
            if (!r.ok()) return resume(absl::StatusOr<RedisReply>(r.status()));
            resume(std::move((*r)[0]));
          });
        });
  }
  // Like Each, but the first error reply fails the whole call.
  Task<absl::StatusOr<std::vector<RedisReply>>> Pipeline(std::vector<RedisArgv> commands);
};

// EVALSHA, falling back to EVAL when the server does not know the script.
Task<absl::StatusOr<RedisReply>> RunScript(AsyncRedisClient& redis, const RedisScript& script,
                                           std::vector<std::string> keys,
                                           std::vector<std::string> args);

// The first error among results (or OK).
absl::Status FirstError(const RedisResults& results);

}  // namespace xc
