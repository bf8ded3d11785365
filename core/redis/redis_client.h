#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace xc {

// A Redis reply as a value. A nil reply is a value, not an error; error replies come back as
// Status (see RedisClient).
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;
  std::vector<RedisReply> elements;

  bool is_nil() const { return type == Type::kNil; }
  static RedisReply Nil() { return RedisReply(); }
  static RedisReply Integer(int64_t v) {
    RedisReply r;
    r.type = Type::kInteger;
    r.integer = v;
    return r;
  }
  static RedisReply String(std::string s) {
    RedisReply r;
    r.type = Type::kString;
    r.str = std::move(s);
    return r;
  }
};

using RedisArgv = std::vector<std::string>;

// A connection to Redis: a standalone server (NewHiredisClient) or a Redis Cluster
// (NewRedisClusterClient), behind one interface. Thread-safe. Transport failures map to
// Unavailable, timeouts to DeadlineExceeded, error replies to Internal (FailedPrecondition for
// NOSCRIPT).
class RedisClient {
 public:
  virtual ~RedisClient() = default;
  virtual absl::StatusOr<RedisReply> Command(const RedisArgv& argv) = 0;
  // Sends all commands in one round trip (one per node on a cluster); replies in order. The
  // first error reply fails all.
  virtual absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgv>& commands) = 0;
  // Like Pipeline, but an error reply fails only its own command; a transport failure fails
  // the call. The default runs the commands one by one.
  virtual absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> PipelineEach(
      const std::vector<RedisArgv>& commands);
  // One client per shard, for commands that walk the keyspace (SCAN): this client itself on a
  // standalone server, one per master on a cluster. Owned by this client.
  virtual std::vector<RedisClient*> Shards() { return {this}; }
};

// A Lua script run by EVALSHA, falling back to EVAL when the server does not know it (after a
// restart or failover). Every key a script touches must share one hash tag (one user).
class RedisScript {
 public:
  explicit RedisScript(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

  absl::StatusOr<RedisReply> Run(RedisClient& client, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args) const;

 private:
  std::string source_;
  std::string sha1_;
};

// The hash tag that keeps every key of one user in one cluster slot: "{alice@example.com}".
std::string UserTag(absl::string_view bare_jid);

}  // namespace xc
