#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "core/redis/redis_client.h"

namespace xc {

struct RedisConnectionOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // AUTH when set
  std::string user;      // ACL user, with password
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration command_timeout = absl::Seconds(2);
};

struct RedisPoolOptions {
  // At most this many connections; a call waits for a free one rather than opening more
  // (opening a connection per call under a burst costs far more than waiting).
  int max_connections = 16;
  absl::Duration acquire_timeout = absl::Seconds(4);  // under callers' 5 s deadlines
};

// Parses "host:port" (or "host", port 6379).
absl::StatusOr<RedisConnectionOptions> ParseRedisAddress(absl::string_view address);

// A RedisClient over hiredis' blocking API with a pool of connections; a call borrows one.
std::unique_ptr<RedisClient> NewHiredisClient(RedisConnectionOptions options,
                                              RedisPoolOptions pool = {});

}  // namespace xc
