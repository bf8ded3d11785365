#include "services/roster/roster_store_redis.h"

#include "absl/strings/numbers.h"
#include "core/store/keys.h"

namespace xc {
namespace {

// KEYS: roster, version, log, pending.
// ARGV: contact, has_expected, expected, has_next, next, bump, pending_op, pending_xml, max_pending
const char kWriteItem[] = R"lua(
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if (not cur) or cur ~= ARGV[3] then return -1 end
elseif cur then
  return -1
end
if ARGV[7] == 'set' then
  if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 and
     redis.call('HLEN', KEYS[4]) >= tonumber(ARGV[9]) then
    return -2
  end
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[8])
elseif ARGV[7] == 'del' then
  redis.call('HDEL', KEYS[4], ARGV[1])
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if ARGV[6] == '1' then
  local ver = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[3], ver, ARGV[1])
  return ver
end
return 0
)lua";

// KEYS: roster, version.
const char kReadRoster[] = R"lua(
return {redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1])}
)lua";

// KEYS: roster, version, log. ARGV: since.
const char kChangesSince[] = R"lua(
local changed = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf', 'WITHSCORES')
local out = {}
for i = 1, #changed, 2 do
  local rec = redis.call('HGET', KEYS[1], changed[i])
  out[#out + 1] = {changed[i], changed[i + 1], rec and '1' or '0', rec or ''}
end
return {redis.call('GET', KEYS[2]) or '0', out}
)lua";

int64_t ToInt(const RedisReply& r) {
  if (r.type == RedisReply::Type::kInteger) return r.integer;
  int64_t v = 0;
  (void)absl::SimpleAtoi(r.str, &v);
  return v;
}

class RedisRosterStore final : public RosterStore {
 public:
  explicit RedisRosterStore(RedisClient* redis)
      : redis_(redis), write_(kWriteItem), read_(kReadRoster), changes_(kChangesSince) {}

  absl::StatusOr<std::optional<std::string>> GetItem(absl::string_view user,
                                                    absl::string_view contact) override {
    absl::StatusOr<RedisReply> r =
        redis_->Command({"HGET", keys::Roster(user), std::string(contact)});
    if (!r.ok()) return r.status();
    if (r->is_nil()) return std::nullopt;
    return r->str;
  }

  absl::StatusOr<int64_t> WriteItem(absl::string_view user, absl::string_view contact,
                                    const ItemWrite& w) override {
    const char* op = w.pending == PendingOp::kSet      ? "set"
                     : w.pending == PendingOp::kDelete ? "del"
                                                       : "";
    absl::StatusOr<RedisReply> r = write_.Run(
        *redis_,
        {keys::Roster(user), keys::RosterVersion(user), keys::RosterLog(user), keys::Pending(user)},
        {std::string(contact), w.expected ? "1" : "0", w.expected.value_or(""), w.next ? "1" : "0",
         w.next.value_or(""), w.bump_version ? "1" : "0", op, w.pending_xml,
         std::to_string(w.max_pending)});
    if (!r.ok()) return r.status();
    if (r->integer == -1) return absl::AbortedError("roster entry changed concurrently");
    if (r->integer == -2) return absl::ResourceExhaustedError("too many waiting requests");
    return r->integer;
  }

  absl::StatusOr<StoredRoster> ReadRoster(absl::string_view user) override {
    absl::StatusOr<RedisReply> r =
        read_.Run(*redis_, {keys::Roster(user), keys::RosterVersion(user)}, {});
    if (!r.ok()) return r.status();
    StoredRoster out;
    if (r->elements.size() != 2) return absl::InternalError("unexpected roster reply");
    out.version = ToInt(r->elements[0]);
    const std::vector<RedisReply>& kv = r->elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) out.items.emplace_back(kv[i].str, kv[i + 1].str);
    return out;
  }

  absl::StatusOr<std::pair<int64_t, std::vector<RosterChange>>> ChangesSince(
      absl::string_view user, int64_t since) override {
    absl::StatusOr<RedisReply> r = changes_.Run(
        *redis_, {keys::Roster(user), keys::RosterVersion(user), keys::RosterLog(user)},
        {std::to_string(since)});
    if (!r.ok()) return r.status();
    if (r->elements.size() != 2) return absl::InternalError("unexpected changes reply");
    std::vector<RosterChange> changes;
    for (const RedisReply& e : r->elements[1].elements) {
      if (e.elements.size() != 4) continue;
      RosterChange c;
      c.contact = e.elements[0].str;
      c.version = ToInt(e.elements[1]);
      if (e.elements[2].str == "1") c.record = e.elements[3].str;
      changes.push_back(std::move(c));
    }
    return std::make_pair(ToInt(r->elements[0]), std::move(changes));
  }

  absl::StatusOr<bool> UserExists(absl::string_view user) override {
    absl::StatusOr<RedisReply> r = redis_->Command({"EXISTS", keys::Account(user)});
    if (!r.ok()) return r.status();
    return r->integer == 1;
  }

  absl::StatusOr<int64_t> EntryCount(absl::string_view user) override {
    absl::StatusOr<RedisReply> r = redis_->Command({"HLEN", keys::Roster(user)});
    if (!r.ok()) return r.status();
    return r->integer;
  }

 private:
  RedisClient* redis_;
  RedisScript write_;
  RedisScript read_;
  RedisScript changes_;
};

}  // namespace

std::unique_ptr<RosterStore> NewRedisRosterStore(RedisClient* redis) {
  return std::make_unique<RedisRosterStore>(redis);
}

}  // namespace xc
