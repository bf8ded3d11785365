#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "core/event/event_loop.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/redis_client.h"

namespace xc {

struct RedisConnectionOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // AUTH when set
  std::string user;      // ACL user, with password
  absl::Duration connect_timeout = absl::Seconds(2);
  // A reply slower than this breaks the connection: everything in flight fails with
  // DeadlineExceeded (the byte stream cannot be resynchronised) and the next call reconnects.
  absl::Duration command_timeout = absl::Seconds(2);
  // After a failed connect, calls fail fast (Unavailable) for this long, doubling per failure
  // up to max_backoff; a successful connect resets it.
  absl::Duration min_backoff = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Seconds(1);
};

// Parses "host:port" (or "host", port 6379).
absl::StatusOr<RedisConnectionOptions> ParseRedisAddress(absl::string_view address);

// One non-blocking connection to one Redis server on `loop`: every call made in a loop turn
// leaves in one write, replies are parsed with hiredis' reader as they arrive and matched to
// calls in order. Connects on first use (AUTH first when configured), reconnects after a
// failure on the next call. Loop thread only (see AsyncRedisClient).
std::unique_ptr<AsyncRedisClient> NewAsyncRedisClient(EventLoop* loop,
                                                      RedisConnectionOptions options);

}  // namespace xc
