#include "services/presence/session_directory_redis.h"

#include "absl/strings/numbers.h"
#include "core/base/random.h"
#include "core/store/keys.h"

namespace xc {
namespace {

using xmpp::store::v1::SessionRecord;

// KEYS: sessions. ARGV: resource, record, fallback resource.
const char kBind[] = R"lua(
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return ARGV[1] end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[2])
return ARGV[3]
)lua";

// KEYS: sessions, presence. ARGV: resource.
const char kRemove[] = R"lua(
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return rec
)lua";

// KEYS: sessions, presence. ARGV: resource, record.
const char kUpdate[] = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

std::vector<SessionEntry> ToEntries(std::vector<RedisReply>& kv) {
  std::vector<SessionEntry> out;
  out.reserve(kv.size() / 2);
  for (size_t i = 0; i + 1 < kv.size(); i += 2) {
    SessionEntry e;
    e.resource = std::move(kv[i].str);
    if (e.record.ParseFromString(kv[i + 1].str)) out.push_back(std::move(e));
  }
  return out;
}

class RedisSessionDirectory final : public SessionDirectory {
 public:
  explicit RedisSessionDirectory(AsyncRedisClient* redis)
      : redis_(redis), bind_(kBind), remove_(kRemove), update_(kUpdate) {}

  Task<absl::StatusOr<std::string>> Bind(const Jid& bare, absl::string_view resource,
                                         absl::string_view gateway_id) override {
    SessionRecord record;
    record.set_gateway_id(std::string(gateway_id));
    record.set_bound_at_unix_ms(absl::ToUnixMillis(absl::Now()));
    std::string wanted = resource.empty() ? RandomId(12) : std::string(resource);
    std::string fallback = resource.empty() ? RandomId(12) : wanted + "-" + RandomId(6);
    std::vector<std::string> keys = {keys::Sessions(bare.BareString())};
    std::vector<std::string> args = {wanted, record.SerializeAsString(), fallback};
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, bind_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    absl::StatusOr<Jid> full = bare.WithResource(r->str);
    if (!full.ok()) co_return full.status();
    RedisArgv add = {"SADD", keys::GatewaySessions(gateway_id), full->ToString()};
    absl::StatusOr<RedisReply> s = co_await redis_->Command(std::move(add));
    if (!s.ok()) co_return s.status();
    co_return std::move(r->str);
  }

  Task<absl::StatusOr<std::optional<SessionRecord>>> Remove(const Jid& full) override {
    std::vector<std::string> keys = {keys::Sessions(full.BareString()),
                                     keys::Presence(full.BareString())};
    std::vector<std::string> args = {full.resource()};
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, remove_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    if (r->is_nil()) co_return std::nullopt;
    SessionRecord record;
    record.ParseFromString(r->str);
    RedisArgv rem = {"SREM", keys::GatewaySessions(record.gateway_id()), full.ToString()};
    (void)co_await redis_->Command(std::move(rem));
    co_return record;
  }

  Task<absl::StatusOr<std::vector<SessionEntry>>> List(const Jid& bare) override {
    RedisArgv cmd = {"HGETALL", keys::Sessions(bare.BareString())};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    co_return ToEntries(r->elements);
  }

  Task<absl::StatusOr<std::vector<std::vector<SessionEntry>>>> ListMany(
      const std::vector<Jid>& bares) override {
    std::vector<RedisArgv> cmds;
    cmds.reserve(bares.size());
    for (const Jid& bare : bares) {
      RedisArgv cmd = {"HGETALL", keys::Sessions(bare.BareString())};
      cmds.push_back(std::move(cmd));
    }
    absl::StatusOr<std::vector<RedisReply>> r = co_await redis_->Pipeline(std::move(cmds));
    if (!r.ok()) co_return r.status();
    std::vector<std::vector<SessionEntry>> out;
    out.reserve(r->size());
    for (RedisReply& reply : *r) out.push_back(ToEntries(reply.elements));
    co_return out;
  }

  Task<absl::Status> Update(const Jid& full, const SessionRecord& record) override {
    std::vector<std::string> keys = {keys::Sessions(full.BareString()),
                                     keys::Presence(full.BareString())};
    std::vector<std::string> args = {full.resource(), record.SerializeAsString()};
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, update_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    if (r->integer == 0) co_return absl::NotFoundError("no such session");
    co_return absl::OkStatus();
  }

  Task<absl::Status> SetLastPresence(const Jid& full, absl::string_view xml) override {
    RedisArgv cmd = {"HSET", keys::Presence(full.BareString()), full.resource(),
                     std::string(xml)};
    co_return (co_await redis_->Command(std::move(cmd))).status();
  }

  Task<absl::StatusOr<std::vector<std::pair<std::string, std::string>>>> LastPresences(
      const Jid& bare) override {
    RedisArgv cmd = {"HGETALL", keys::Presence(bare.BareString())};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    std::vector<std::pair<std::string, std::string>> out;
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      out.emplace_back(std::move(r->elements[i].str), std::move(r->elements[i + 1].str));
    }
    co_return out;
  }

  Task<absl::StatusOr<std::vector<PresenceView>>> PresenceOf(
      const std::vector<Jid>& bares) override {
    std::vector<RedisArgv> cmds;
    cmds.reserve(2 * bares.size());
    for (const Jid& bare : bares) {
      RedisArgv presences = {"HGETALL", keys::Presence(bare.BareString())};
      RedisArgv last = {"GET", keys::LastUnavailable(bare.BareString())};
      cmds.push_back(std::move(presences));
      cmds.push_back(std::move(last));
    }
    absl::StatusOr<std::vector<RedisReply>> r = co_await redis_->Pipeline(std::move(cmds));
    if (!r.ok()) co_return r.status();
    std::vector<PresenceView> out(bares.size());
    for (size_t i = 0; i < bares.size(); ++i) {
      std::vector<RedisReply>& kv = (*r)[2 * i].elements;
      for (size_t k = 0; k + 1 < kv.size(); k += 2) {
        out[i].presences.emplace_back(std::move(kv[k].str), std::move(kv[k + 1].str));
      }
      int64_t ms = 0;
      const RedisReply& last = (*r)[2 * i + 1];
      if (!last.is_nil() && absl::SimpleAtoi(last.str, &ms)) {
        out[i].last_unavailable = absl::FromUnixMillis(ms);
      }
    }
    co_return out;
  }

  Task<absl::Status> SetLastUnavailable(const Jid& bare, absl::Time when) override {
    RedisArgv cmd = {"SET", keys::LastUnavailable(bare.BareString()),
                     std::to_string(absl::ToUnixMillis(when))};
    co_return (co_await redis_->Command(std::move(cmd))).status();
  }

  Task<absl::StatusOr<std::optional<absl::Time>>> LastUnavailable(const Jid& bare) override {
    RedisArgv cmd = {"GET", keys::LastUnavailable(bare.BareString())};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    int64_t ms = 0;
    if (r->is_nil() || !absl::SimpleAtoi(r->str, &ms)) co_return std::nullopt;
    co_return absl::FromUnixMillis(ms);
  }

  Task<absl::StatusOr<std::vector<std::string>>> GatewaySessions(
      absl::string_view gateway) override {
    RedisArgv cmd = {"SMEMBERS", keys::GatewaySessions(gateway)};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    std::vector<std::string> out;
    for (RedisReply& e : r->elements) out.push_back(std::move(e.str));
    co_return out;
  }

 private:
  AsyncRedisClient* redis_;
  RedisScript bind_;
  RedisScript remove_;
  RedisScript update_;
};

}  // namespace

std::unique_ptr<SessionDirectory> NewRedisSessionDirectory(AsyncRedisClient* redis) {
  return std::make_unique<RedisSessionDirectory>(redis);
}

}  // namespace xc
