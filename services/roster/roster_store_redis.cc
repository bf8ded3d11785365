#include "services/roster/roster_store_redis.h"

#include "absl/strings/numbers.h"
#include "core/store/keys.h"

namespace xc {
namespace {

// One or two entries in one atomic step (two only where both users' keys are on one node).
// Per entry, KEYS: roster, version, log, pending; ARGV (9): contact, has_expected, expected,
// has_next, next, bump, pending_op, pending_xml, max_pending. Every entry is compared with what
// was read, and the waiting-request cap checked, before anything is written; then each entry
// is written or deleted, its waiting request set or deleted, and, when visible, the version
// bumped and the contact logged. Returns each entry's new version (0: not bumped), or -1 (an
// entry changed) / -2 (too many waiting requests).
const char kWriteEntries[] = R"lua(
local n = #KEYS / 4
for s = 0, n - 1 do
  local k, a = s * 4, s * 9
  local cur = redis.call('HGET', KEYS[k + 1], ARGV[a + 1])
  if ARGV[a + 2] == '1' then
    if (not cur) or cur ~= ARGV[a + 3] then return -1 end
  elseif cur then
    return -1
  end
  if ARGV[a + 7] == 'set' and redis.call('HLEN', KEYS[k + 4]) >= tonumber(ARGV[a + 9]) and
     redis.call('HEXISTS', KEYS[k + 4], ARGV[a + 1]) == 0 then
    return -2
  end
end
local out = {}
for s = 0, n - 1 do
  local k, a = s * 4, s * 9
  if ARGV[a + 7] == 'set' then
    redis.call('HSET', KEYS[k + 4], ARGV[a + 1], ARGV[a + 8])
  elseif ARGV[a + 7] == 'del' then
    redis.call('HDEL', KEYS[k + 4], ARGV[a + 1])
  end
  if ARGV[a + 4] == '1' then
    redis.call('HSET', KEYS[k + 1], ARGV[a + 1], ARGV[a + 5])
  else
    redis.call('HDEL', KEYS[k + 1], ARGV[a + 1])
  end
  out[s + 1] = 0
  if ARGV[a + 6] == '1' then
    out[s + 1] = redis.call('INCR', KEYS[k + 2])
    redis.call('ZADD', KEYS[k + 3], out[s + 1], ARGV[a + 1])
  end
end
return out
)lua";

const char* PendingName(PendingOp op) {
  return op == PendingOp::kSet ? "set" : op == PendingOp::kDelete ? "del" : "";
}

// One entry of kWriteEntries: `owner`'s entry for `contact`, its keys and its nine arguments.
void AddEntry(const std::string& owner, std::string contact, ItemWrite&& w,
              std::vector<std::string>* keys, std::vector<std::string>* args) {
  for (std::string key : {keys::Roster(owner), keys::RosterVersion(owner), keys::RosterLog(owner),
                          keys::Pending(owner)}) {
    keys->push_back(std::move(key));
  }
  for (std::string arg :
       {std::move(contact), std::string(w.expected ? "1" : "0"), std::move(w.expected).value_or(""),
        std::string(w.next ? "1" : "0"), std::move(w.next).value_or(""),
        std::string(w.bump_version ? "1" : "0"), std::string(PendingName(w.pending)),
        std::move(w.pending_xml), std::to_string(w.max_pending)}) {
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
        write_(kWriteEntries),
        read_(kReadRoster),
        changes_(kChangesSince) {}

  bool WritesPairsAtomically() const override { return single_node_; }

  Task<absl::StatusOr<std::pair<int64_t, int64_t>>> WritePair(
      std::string user, std::string contact, std::optional<ItemWrite>&& mine,
      std::optional<ItemWrite>&& theirs) override {
    if (!single_node_) co_return absl::UnimplementedError("pair writes need one Redis node");
    const bool has_mine = mine.has_value();
    const bool has_theirs = theirs.has_value();
    if (!has_mine && !has_theirs) co_return std::make_pair(int64_t{0}, int64_t{0});
    std::vector<std::string> keys;
    std::vector<std::string> args;
    if (has_mine) AddEntry(user, contact, *std::move(mine), &keys, &args);
    if (has_theirs) AddEntry(contact, user, *std::move(theirs), &keys, &args);
    absl::StatusOr<std::vector<int64_t>> versions =
        co_await WriteEntries(std::move(keys), std::move(args));
    if (!versions.ok()) co_return versions.status();
    const int64_t first = has_mine ? (*versions)[0] : 0;
    const int64_t second = has_theirs ? versions->back() : 0;
    co_return std::make_pair(first, second);
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
                                          ItemWrite&& w) override {
    std::vector<std::string> keys;
    std::vector<std::string> args;
    AddEntry(user, std::move(contact), std::move(w), &keys, &args);
    absl::StatusOr<std::vector<int64_t>> versions =
        co_await WriteEntries(std::move(keys), std::move(args));
    if (!versions.ok()) co_return versions.status();
    co_return (*versions)[0];
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
  // kWriteEntries over the entries AddEntry put in `keys` and `args`: each one's new version.
  Task<absl::StatusOr<std::vector<int64_t>>> WriteEntries(std::vector<std::string> keys,
                                                          std::vector<std::string> args) {
    const size_t entries = keys.size() / 4;
    absl::StatusOr<RedisReply> r =
        co_await RunScript(*redis_, write_, std::move(keys), std::move(args));
    if (!r.ok()) co_return r.status();
    if (r->type == RedisReply::Type::kInteger) {
      if (r->integer == -2) co_return absl::ResourceExhaustedError("too many waiting requests");
      co_return absl::AbortedError("roster entry changed concurrently");
    }
    if (r->elements.size() != entries) co_return absl::InternalError("unexpected write reply");
    std::vector<int64_t> versions;
    for (const RedisReply& v : r->elements) versions.push_back(ToInt(v));
    co_return versions;
  }

  AsyncRedisClient* redis_;
  const bool single_node_;
  RedisScript write_;
  RedisScript read_;
  RedisScript changes_;
};

}  // namespace

std::unique_ptr<RosterStore> NewRedisRosterStore(AsyncRedisClient* redis, bool single_node) {
  return std::make_unique<RedisRosterStore>(redis, single_node);
}

}  // namespace xc
