#include "tests/fakes/fake_redis_client.h"

#include "absl/strings/ascii.h"

namespace xc::testing {

absl::StatusOr<RedisReply> FakeRedisClient::Command(const RedisArgv& argv) {
  std::lock_guard<std::mutex> lock(mu_);
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::string cmd = absl::AsciiStrToUpper(argv[0]);
  auto arity = [&](size_t n) { return argv.size() >= n; };
  if (cmd == "GET" && arity(2)) {
    auto it = strings_.find(argv[1]);
    return it == strings_.end() ? RedisReply::Nil() : RedisReply::String(it->second);
  }
  if (cmd == "SET" && arity(3)) {
    strings_[argv[1]] = argv[2];
    RedisReply ok;
    ok.type = RedisReply::Type::kStatus;
    ok.str = "OK";
    return ok;
  }
  if (cmd == "DEL" && arity(2)) {
    int64_t n = 0;
    for (size_t i = 1; i < argv.size(); ++i) n += strings_.erase(argv[i]) + hashes_.erase(argv[i]);
    return RedisReply::Integer(n);
  }
  if (cmd == "EXISTS" && arity(2)) {
    return RedisReply::Integer(strings_.count(argv[1]) + hashes_.count(argv[1]));
  }
  if (cmd == "HGET" && arity(3)) {
    auto h = hashes_.find(argv[1]);
    if (h == hashes_.end()) return RedisReply::Nil();
    auto f = h->second.find(argv[2]);
    return f == h->second.end() ? RedisReply::Nil() : RedisReply::String(f->second);
  }
  if (cmd == "HSET" && arity(4)) {
    int64_t added = 0;
    for (size_t i = 2; i + 1 < argv.size(); i += 2) {
      added += hashes_[argv[1]].insert_or_assign(argv[i], argv[i + 1]).second ? 1 : 0;
    }
    return RedisReply::Integer(added);
  }
  if (cmd == "HDEL" && arity(3)) {
    int64_t n = 0;
    for (size_t i = 2; i < argv.size(); ++i) n += hashes_[argv[1]].erase(argv[i]);
    return RedisReply::Integer(n);
  }
  if ((cmd == "HGETALL" || cmd == "HVALS" || cmd == "HKEYS" || cmd == "HLEN") && arity(2)) {
    RedisReply out;
    out.type = RedisReply::Type::kArray;
    auto h = hashes_.find(argv[1]);
    if (cmd == "HLEN") return RedisReply::Integer(h == hashes_.end() ? 0 : h->second.size());
    if (h == hashes_.end()) return out;
    for (const auto& [field, value] : h->second) {
      if (cmd != "HVALS") out.elements.push_back(RedisReply::String(field));
      if (cmd != "HKEYS") out.elements.push_back(RedisReply::String(value));
    }
    return out;
  }
  return absl::UnimplementedError("FakeRedisClient does not implement " + cmd);
}

absl::StatusOr<std::vector<RedisReply>> FakeRedisClient::Pipeline(
    const std::vector<RedisArgv>& commands) {
  std::vector<RedisReply> out;
  for (const RedisArgv& c : commands) {
    absl::StatusOr<RedisReply> r = Command(c);
    if (!r.ok()) return r.status();
    out.push_back(*std::move(r));
  }
  return out;
}

}  // namespace xc::testing
