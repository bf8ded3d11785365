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
  explicit RedisRosterStore(AsyncRedisClient* redis)
      : redis_(redis), write_(kWriteItem), read_(kReadRoster), changes_(kChangesSince) {}

  Task<absl::StatusOr<std::optional<std::string>>> GetItem(std::string user,
                                                           std::string contact) override {
    RedisArgv cmd = {"HGET", keys::Roster(user), std::move(contact)};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    if (r->is_nil()) co_return std::nullopt;
    co_return std::move(r->str);
  }

  Task<absl::StatusOr<OwnedItem>> GetOwnedItem(std::string user, std::string contact) override {
    // Both keys carry the user's tag: one node, one round trip.
    std::vector<RedisArgv> cmds = {{"EXISTS", keys::Account(user)},
                                   {"HGET", keys::Roster(user), std::move(contact)}};
    absl::StatusOr<std::vector<RedisReply>> r = co_await redis_->Pipeline(std::move(cmds));
    if (!r.ok()) co_return r.status();
    OwnedItem out;
    out.user_exists = (*r)[0].integer == 1;
    if (!(*r)[1].is_nil()) out.record = std::move((*r)[1].str);
    co_return out;
  }

  Task<absl::StatusOr<int64_t>> WriteItem(std::string user, std::string contact,
                                          ItemWrite w) override {
    const char* op = w.pending == PendingOp::kSet      ? "set"
                     : w.pending == PendingOp::kDelete ? "del"
                                                       : "";
    std::vector<std::string> keys = {keys::Roster(user), keys::RosterVersion(user),
                                     keys::RosterLog(user), keys::Pending(user)};
    std::vector<std::string> args = {std::move(contact),
                                     w.expected ? "1" : "0",
                                     w.expected.value_or(""),
                                     w.next ? "1" : "0",
                                     w.next.value_or(""),
                                     w.bump_version ? "1" : "0",
                                     op,
                                     std::move(w.pending_xml),
                                     std::to_string(w.max_pending)};
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, write_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    if (r->integer == -1) co_return absl::AbortedError("roster entry changed concurrently");
    if (r->integer == -2) co_return absl::ResourceExhaustedError("too many waiting requests");
    co_return r->integer;
  }

  Task<absl::StatusOr<StoredRoster>> ReadRoster(std::string user) override {
    std::vector<std::string> keys = {keys::Roster(user), keys::RosterVersion(user)};
    absl::StatusOr<RedisReply> r = co_await RunScript(*redis_, read_, std::move(keys), {});
    if (!r.ok()) co_return r.status();
    StoredRoster out;
    if (r->elements.size() != 2) co_return absl::InternalError("unexpected roster reply");
    out.version = ToInt(r->elements[0]);
    std::vector<RedisReply>& kv = r->elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      out.items.emplace_back(std::move(kv[i].str), std::move(kv[i + 1].str));
    }
    co_return out;
  }

  Task<absl::StatusOr<std::pair<int64_t, std::vector<RosterChange>>>> ChangesSince(
      std::string user, int64_t since) override {
    std::vector<std::string> keys = {keys::Roster(user), keys::RosterVersion(user),
                                     keys::RosterLog(user)};
    std::vector<std::string> args = {std::to_string(since)};
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, changes_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    if (r->elements.size() != 2) co_return absl::InternalError("unexpected changes reply");
    std::vector<RosterChange> changes;
    for (RedisReply& e : r->elements[1].elements) {
      if (e.elements.size() != 4) continue;
      RosterChange c;
      c.contact = std::move(e.elements[0].str);
      c.version = ToInt(e.elements[1]);
      if (e.elements[2].str == "1") c.record = std::move(e.elements[3].str);
      changes.push_back(std::move(c));
    }
    co_return std::make_pair(ToInt(r->elements[0]), std::move(changes));
  }

  Task<absl::StatusOr<bool>> UserExists(std::string user) override {
    RedisArgv cmd = {"EXISTS", keys::Account(user)};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    co_return r->integer == 1;
  }

  Task<absl::StatusOr<int64_t>> EntryCount(std::string user) override {
    RedisArgv cmd = {"HLEN", keys::Roster(user)};
    absl::StatusOr<RedisReply> r = co_await redis_->Command(std::move(cmd));
    if (!r.ok()) co_return r.status();
    co_return r->integer;
  }

 private:
  AsyncRedisClient* redis_;
  RedisScript write_;
  RedisScript read_;
  RedisScript changes_;
};

}  // namespace

std::unique_ptr<RosterStore> NewRedisRosterStore(AsyncRedisClient* redis) {
  return std::make_unique<RedisRosterStore>(redis);
}

}  // namespace xc
