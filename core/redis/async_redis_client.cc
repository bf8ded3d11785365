#include "core/redis/async_redis_client.h"

#include "absl/strings/match.h"

namespace xc {

Task<absl::StatusOr<std::vector<RedisReply>>> AsyncRedisClient::Pipeline(
    std::vector<RedisArgv> commands) {
  absl::StatusOr<RedisResults> each = co_await Each(std::move(commands));
  if (!each.ok()) co_return each.status();
  std::vector<RedisReply> out;
  out.reserve(each->size());
  for (absl::StatusOr<RedisReply>& r : *each) {
    if (!r.ok()) co_return r.status();
    out.push_back(*std::move(r));
  }
  co_return out;
}

namespace {

RedisArgv ScriptArgv(const char* verb, const std::string& script_or_sha,
                     std::vector<std::string>& keys, std::vector<std::string>& args, bool move) {
  RedisArgv argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back(verb);
  argv.push_back(script_or_sha);
  argv.push_back(std::to_string(keys.size()));
  for (std::string& k : keys) argv.push_back(move ? std::move(k) : k);
  for (std::string& a : args) argv.push_back(move ? std::move(a) : a);
  return argv;
}

}  // namespace

// EVALSHA, and for a server that lost its script cache (restart, failover) the source, once.
// One awaited command in the loop, so that the frame every script call allocates holds one
// command's awaiter rather than two.
Task<absl::StatusOr<RedisReply>> RunScript(AsyncRedisClient& redis, const RedisScript& script,
                                           std::vector<std::string> keys,
                                           std::vector<std::string> args) {
  for (bool source = false;; source = true) {
    // (Not a conditional inside the co_await: GCC 12 then destroys both arms' temporaries.)
    RedisArgv argv = source ? ScriptArgv("EVAL", script.source(), keys, args, true)
                            : ScriptArgv("EVALSHA", script.sha1(), keys, args, false);
    absl::StatusOr<RedisReply> reply = co_await redis.Command(std::move(argv));
    if (source || reply.ok() || !absl::StrContains(reply.status().message(), "NOSCRIPT")) {
      co_return reply;
    }
  }
}

absl::Status FirstError(const RedisResults& results) {
  for (const absl::StatusOr<RedisReply>& r : results) {
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

}  // namespace xc
