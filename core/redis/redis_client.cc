#include "core/redis/redis_client.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace xc {

RedisScript::RedisScript(std::string source) : source_(std::move(source)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source_.data()), source_.size(), digest);
  sha1_ = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), SHA_DIGEST_LENGTH));
}

absl::StatusOr<RedisReply> RedisScript::Run(RedisClient& client,
                                            const std::vector<std::string>& keys,
                                            const std::vector<std::string>& args) const {
  RedisArgv argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(sha1_);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<RedisReply> reply = client.Command(argv);
  if (reply.ok() || !absl::StrContains(reply.status().message(), "NOSCRIPT")) return reply;
  argv[0] = "EVAL";
  argv[1] = source_;
  return client.Command(argv);
}

absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> RedisClient::PipelineEach(
    const std::vector<RedisArgv>& commands) {
  std::vector<absl::StatusOr<RedisReply>> out;
  out.reserve(commands.size());
  for (const RedisArgv& argv : commands) {
    absl::StatusOr<RedisReply> r = Command(argv);
    if (absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) return r.status();
    out.push_back(std::move(r));
  }
  return out;
}

std::string UserTag(absl::string_view bare_jid) { return absl::StrCat("{", bare_jid, "}"); }

}  // namespace xc
