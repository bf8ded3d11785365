#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

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
  void Kill();     // SIGKILL; the port stays reserved for Restart()
  void Restart();  // a fresh, empty server on the same port

 private:
  void Start();
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

// A real Redis Cluster of `masters` redis-server processes on loopback (no replicas), created
// with `redis-cli --cluster create`; killed on destruction.
class RedisCluster {
 public:
  explicit RedisCluster(int masters = 3);
  ~RedisCluster();
  // "cluster://127.0.0.1:P1,127.0.0.1:P2,..." for ConnectRedis.
  std::string address() const;
  int port(int i) const { return ports_[i]; }
  int size() const { return static_cast<int>(ports_.size()); }
  std::unique_ptr<RedisClient> NewClient() const;
  // A plain connection to node i (no redirects followed).
  std::unique_ptr<RedisClient> NodeClient(int i) const;
  std::string NodeId(int i) const;
  // Moves `slots` slots with their keys from node `from` to node `to` (redis-cli --cluster
  // reshard); blocks until done. Returns false when redis-cli failed.
  bool Reshard(int from, int to, int slots) const;
  void FlushAll();
  void Kill(int i);  // SIGKILL node i

 private:
  std::vector<pid_t> pids_;
  std::vector<int> ports_;
  std::string dir_;
};

}  // namespace xc::testing
