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

// Two entries at once (each side as in kWriteItem, every check before any write).
// KEYS: roster, version, log, pending of side 1, then of side 2.
// ARGV: per side (10 each): present, contact, has_expected, expected, has_next, next, bump,
// pending_op, pending_xml, max_pending. Returns {version 1, version 2}, or -1 / -2.
const char kWritePair[] = R"lua(
for s = 0, 1 do
  local k, a = s * 4, s * 10
  if ARGV[a + 1] == '1' then
    local cur = redis.call('HGET', KEYS[k + 1], ARGV[a + 2])
    if ARGV[a + 3] == '1' then
      if (not cur) or cur ~= ARGV[a + 4] then return -1 end
    elseif cur then
      return -1
    end
    if ARGV[a + 8] == 'set' and redis.call('HEXISTS', KEYS[k + 4], ARGV[a + 2]) == 0 and
       redis.call('HLEN', KEYS[k + 4]) >= tonumber(ARGV[a + 10]) then
      return -2
    end
  end
end
local out = {0, 0}
for s = 0, 1 do
  local k, a = s * 4, s * 10
  if ARGV[a + 1] == '1' then
    if ARGV[a + 8] == 'set' then
      redis.call('HSET', KEYS[k + 4], ARGV[a + 2], ARGV[a + 9])
    elseif ARGV[a + 8] == 'del' then
      redis.call('HDEL', KEYS[k + 4], ARGV[a + 2])
    end
    if ARGV[a + 5] == '1' then
      redis.call('HSET', KEYS[k + 1], ARGV[a + 2], ARGV[a + 6])
    else
      redis.call('HDEL', KEYS[k + 1], ARGV[a + 2])
    end
    if ARGV[a + 7] == '1' then
      out[s + 1] = redis.call('INCR', KEYS[k + 2])
      redis.call('ZADD', KEYS[k + 3], out[s + 1], ARGV[a + 2])
    end
  end
end
return out
)lua";

const char* PendingName(PendingOp op) {
  return op == PendingOp::kSet ? "set" : op == PendingOp::kDelete ? "del" : "";
}

// One side of kWritePair: its keys, and its ten arguments.
void AddSide(const std::string& owner, std::string contact, std::optional<ItemWrite> w,
             std::vector<std::string>* keys, std::vector<std::string>* args) {
  for (std::string key : {keys::Roster(owner), keys::RosterVersion(owner), keys::RosterLog(owner),
                          keys::Pending(owner)}) {
    keys->push_back(std::move(key));
  }
  const bool present = w.has_value();
  ItemWrite none;
  ItemWrite& write = present ? *w : none;
  for (std::string arg : {std::string(present ? "1" : "0"), std::move(contact),
                          std::string(write.expected ? "1" : "0"), write.expected.value_or(""),
                          std::string(write.next ? "1" : "0"), write.next.value_or(""),
                          std::string(write.bump_version ? "1" : "0"),
                          std::string(PendingName(write.pending)), std::move(write.pending_xml),
                          std::to_string(write.max_pending)}) {
    args->push_back(std::move(arg));
  }
}

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
  RedisRosterStore(AsyncRedisClient* redis, bool single_node)
      : redis_(redis),
        single_node_(single_node),
        write_(kWriteItem),
        write_pair_(kWritePair),
        read_(kReadRoster),
        changes_(kChangesSince) {}

  bool WritesPairsAtomically() const override { return single_node_; }

  Task<absl::StatusOr<std::pair<int64_t, int64_t>>> WritePair(
      std::string user, std::string contact, std::optional<ItemWrite> mine,
      std::optional<ItemWrite> theirs) override {
    if (!single_node_) co_return absl::UnimplementedError("pair writes need one Redis node");
    std::vector<std::string> keys;
    std::vector<std::string> args;
    AddSide(user, contact, std::move(mine), &keys, &args);
    AddSide(contact, user, std::move(theirs), &keys, &args);
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, write_pair_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    if (r->type == RedisReply::Type::kInteger) {
      if (r->integer == -2) co_return absl::ResourceExhaustedError("too many waiting requests");
      co_return absl::AbortedError("roster entry changed concurrently");
    }
    if (r->elements.size() != 2) co_return absl::InternalError("unexpected pair write reply");
    co_return std::make_pair(ToInt(r->elements[0]), ToInt(r->elements[1]));
  }

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
  const bool single_node_;
  RedisScript write_;
  RedisScript write_pair_;
  RedisScript read_;
  RedisScript changes_;
};

}  // namespace

std::unique_ptr<RosterStore> NewRedisRosterStore(AsyncRedisClient* redis, bool single_node) {
  return std::make_unique<RedisRosterStore>(redis, single_node);
}

}  // namespace xc
