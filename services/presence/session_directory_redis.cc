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

class RedisSessionDirectory final : public SessionDirectory {
 public:
  explicit RedisSessionDirectory(RedisClient* redis)
      : redis_(redis), bind_(kBind), remove_(kRemove), update_(kUpdate) {}

  absl::StatusOr<std::string> Bind(const Jid& bare, absl::string_view resource,
                                   absl::string_view gateway_id) override {
    SessionRecord record;
    record.set_gateway_id(std::string(gateway_id));
    record.set_bound_at_unix_ms(absl::ToUnixMillis(absl::Now()));
    std::string wanted = resource.empty() ? RandomId(12) : std::string(resource);
    std::string fallback = resource.empty() ? RandomId(12) : wanted + "-" + RandomId(6);
    absl::StatusOr<RedisReply> r =
        bind_.Run(*redis_, {keys::Sessions(bare.BareString())},
                  {wanted, record.SerializeAsString(), fallback});
    if (!r.ok()) return r.status();
    absl::StatusOr<Jid> full = bare.WithResource(r->str);
    if (!full.ok()) return full.status();
    absl::StatusOr<RedisReply> s =
        redis_->Command({"SADD", keys::GatewaySessions(gateway_id), full->ToString()});
    if (!s.ok()) return s.status();
    return r->str;
  }

  absl::StatusOr<std::optional<SessionRecord>> Remove(const Jid& full) override {
    absl::StatusOr<RedisReply> r =
        remove_.Run(*redis_, {keys::Sessions(full.BareString()), keys::Presence(full.BareString())},
                    {full.resource()});
    if (!r.ok()) return r.status();
    if (r->is_nil()) return std::nullopt;
    SessionRecord record;
    record.ParseFromString(r->str);
    (void)redis_->Command({"SREM", keys::GatewaySessions(record.gateway_id()), full.ToString()});
    return record;
  }

  absl::StatusOr<std::vector<SessionEntry>> List(const Jid& bare) override {
    absl::StatusOr<RedisReply> r = redis_->Command({"HGETALL", keys::Sessions(bare.BareString())});
    if (!r.ok()) return r.status();
    std::vector<SessionEntry> out;
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      SessionEntry e;
      e.resource = r->elements[i].str;
      if (e.record.ParseFromString(r->elements[i + 1].str)) out.push_back(std::move(e));
    }
    return out;
  }

  absl::Status Update(const Jid& full, const SessionRecord& record) override {
    absl::StatusOr<RedisReply> r = update_.Run(
        *redis_, {keys::Sessions(full.BareString()), keys::Presence(full.BareString())},
        {full.resource(), record.SerializeAsString()});
    if (!r.ok()) return r.status();
    if (r->integer == 0) return absl::NotFoundError("no such session");
    return absl::OkStatus();
  }

  absl::Status SetLastPresence(const Jid& full, absl::string_view xml) override {
    return redis_
        ->Command({"HSET", keys::Presence(full.BareString()), full.resource(), std::string(xml)})
        .status();
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LastPresences(
      const Jid& bare) override {
    absl::StatusOr<RedisReply> r = redis_->Command({"HGETALL", keys::Presence(bare.BareString())});
    if (!r.ok()) return r.status();
    std::vector<std::pair<std::string, std::string>> out;
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      out.emplace_back(r->elements[i].str, r->elements[i + 1].str);
    }
    return out;
  }

  absl::Status SetLastUnavailable(const Jid& bare, absl::Time when) override {
    return redis_
        ->Command({"SET", keys::LastUnavailable(bare.BareString()),
                   std::to_string(absl::ToUnixMillis(when))})
        .status();
  }

  absl::StatusOr<std::optional<absl::Time>> LastUnavailable(const Jid& bare) override {
    absl::StatusOr<RedisReply> r = redis_->Command({"GET", keys::LastUnavailable(bare.BareString())});
    if (!r.ok()) return r.status();
    int64_t ms = 0;
    if (r->is_nil() || !absl::SimpleAtoi(r->str, &ms)) return std::nullopt;
    return absl::FromUnixMillis(ms);
  }

  absl::StatusOr<std::vector<std::string>> GatewaySessions(absl::string_view gateway) override {
    absl::StatusOr<RedisReply> r = redis_->Command({"SMEMBERS", keys::GatewaySessions(gateway)});
    if (!r.ok()) return r.status();
    std::vector<std::string> out;
    for (const RedisReply& e : r->elements) out.push_back(e.str);
    return out;
  }

 private:
  RedisClient* redis_;
  RedisScript bind_;
  RedisScript remove_;
  RedisScript update_;
};

}  // namespace

std::unique_ptr<SessionDirectory> NewRedisSessionDirectory(RedisClient* redis) {
  return std::make_unique<RedisSessionDirectory>(redis);
}

}  // namespace xc
