#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/auth/scram.h"
#include "core/jid/jid.h"
#include "core/redis/redis_client.h"

namespace xc {

struct StoredAccount {
  ScramCredentials sha1;
  ScramCredentials sha256;
};

// User accounts in Redis: SCRAM-SHA-1 and SCRAM-SHA-256 salted keys per user, never the
// password. Thread-safe when the client is.
class AccountStore {
 public:
  explicit AccountStore(RedisClient* redis) : redis_(redis) {}

  // Creates or replaces the account (a new password for an existing user).
  absl::Status Put(const Jid& bare, absl::string_view password, int iterations = 4096);
  // Deletes the account and every key of the user. NotFound when there was no account.
  absl::Status Delete(const Jid& bare);
  absl::StatusOr<std::vector<std::string>> List(absl::string_view domain);
  absl::StatusOr<std::optional<StoredAccount>> Lookup(const Jid& bare);
  absl::StatusOr<bool> Exists(const Jid& bare);

 private:
  RedisClient* redis_;
};

}  // namespace xc
