#include "core/store/account_store.h"

#include <algorithm>

#include "core/store/keys.h"

namespace xc {

absl::Status AccountStore::Put(const Jid& bare, absl::string_view password, int iterations) {
  const std::string user = bare.BareString();
  ScramCredentials sha1 = NewScramCredentials(ScramHash::kSha1, password, iterations);
  ScramCredentials sha256 = NewScramCredentials(ScramHash::kSha256, password, iterations);
  absl::StatusOr<std::vector<RedisReply>> r = redis_->Pipeline({
      {"HSET", keys::Account(user), "scram-sha-1", EncodeScramCredentials(sha1), "scram-sha-256",
       EncodeScramCredentials(sha256)},
      {"SADD", keys::DomainUsers(bare.domain()), user},
  });
  return r.status();
}

absl::Status AccountStore::Delete(const Jid& bare) {
  const std::string user = bare.BareString();
  absl::StatusOr<std::vector<RedisReply>> r = redis_->Pipeline({
      {"DEL", keys::Account(user)},
      {"DEL", keys::Roster(user), keys::RosterVersion(user), keys::RosterLog(user),
       keys::Pending(user), keys::Presence(user), keys::LastUnavailable(user)},
      {"SREM", keys::DomainUsers(bare.domain()), user},
  });
  if (!r.ok()) return r.status();
  if ((*r)[0].integer == 0) return absl::NotFoundError("no such user");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> AccountStore::List(absl::string_view domain) {
  absl::StatusOr<RedisReply> r = redis_->Command({"SMEMBERS", keys::DomainUsers(domain)});
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  for (const RedisReply& e : r->elements) out.push_back(e.str);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::optional<StoredAccount>> AccountStore::Lookup(const Jid& bare) {
  absl::StatusOr<RedisReply> r = redis_->Command(
      {"HMGET", keys::Account(bare.BareString()), "scram-sha-1", "scram-sha-256"});
  if (!r.ok()) return r.status();
  if (r->elements.size() != 2 || r->elements[1].is_nil()) return std::nullopt;
  StoredAccount account;
  if (!DecodeScramCredentials(r->elements[0].str, &account.sha1) ||
      !DecodeScramCredentials(r->elements[1].str, &account.sha256)) {
    return absl::DataLossError("stored credentials are unreadable");
  }
  return account;
}

absl::StatusOr<bool> AccountStore::Exists(const Jid& bare) {
  absl::StatusOr<RedisReply> r = redis_->Command({"EXISTS", keys::Account(bare.BareString())});
  if (!r.ok()) return r.status();
  return r->integer == 1;
}

}  // namespace xc
