#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "core/redis/redis_client.h"

namespace xc::testing {

// A real redis-server on a free loopback port, for integration tests; killed on destruction.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::unique_ptr<RedisClient> NewClient() const;
  void FlushAll();

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

}  // namespace xc::testing
