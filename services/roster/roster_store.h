#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/async/task.h"

namespace xc {

enum class PendingOp { kKeep, kSet, kDelete };

// One atomic change of one roster entry (a serialized RosterItemRecord).
struct ItemWrite {
  std::optional<std::string> expected;  // what must be stored now; nullopt = nothing
  std::optional<std::string> next;      // what to store; nullopt = delete the entry
  bool bump_version = false;            // a visible change: new roster version, logged
  PendingOp pending = PendingOp::kKeep;  // the stored subscribe request from this contact
  std::string pending_xml;
  size_t max_pending = 0;  // with kSet: refuse (ResourceExhausted) beyond this many stored
};

struct StoredRoster {
  int64_t version = 0;
  std::vector<std::pair<std::string, std::string>> items;  // contact → record (all entries)
};

struct RosterChange {
  std::string contact;
  int64_t version = 0;
  std::optional<std::string> record;  // nullopt: deleted since
};

// An entry read together with whether its owner has an account (one round trip: what an
// inbound step needs).
struct OwnedItem {
  bool user_exists = false;
  std::optional<std::string> record;
};

// Per-user roster storage. Every method touches one user's keys only, and WriteItem is atomic
// (compare-and-swap), so concurrent replicas never lose an update: a lost race returns Aborted
// and the caller re-reads. Coroutines on the store's event loop: the strings are copied into
// the call; a write is taken by rvalue reference (its strings move into the command), so it must
// stay valid until the call ends (await it where it is made), which keeps it out of the callers'
// coroutine frames.
class RosterStore {
 public:
  virtual ~RosterStore() = default;
  virtual Task<absl::StatusOr<std::optional<std::string>>> GetItem(std::string user,
                                                                   std::string contact) = 0;
  virtual Task<absl::StatusOr<OwnedItem>> GetOwnedItem(std::string user, std::string contact) = 0;
  // Returns the new roster version when bumped, else 0. Aborted when `expected` is stale.
  virtual Task<absl::StatusOr<int64_t>> WriteItem(std::string user, std::string contact,
                                                  ItemWrite&& write) = 0;
  virtual Task<absl::StatusOr<StoredRoster>> ReadRoster(std::string user) = 0;
  // Current version, and every entry changed after `since`, oldest change first.
  virtual Task<absl::StatusOr<std::pair<int64_t, std::vector<RosterChange>>>> ChangesSince(
      std::string user, int64_t since) = 0;
  // Both entries of a pair in one atomic step, where the store can do that (both users' keys on
  // one node): `mine` changes user's entry for contact, `theirs` contact's entry for user;
  // nullopt leaves that side alone (unchecked). Returns each side's new roster version (0 when
  // not bumped). Aborted when either side's `expected` is stale, ResourceExhausted when a kSet
  // would pass its max_pending: nothing is written then.
  virtual bool WritesPairsAtomically() const { return false; }
  virtual Task<absl::StatusOr<std::pair<int64_t, int64_t>>> WritePair(
      std::string user, std::string contact, std::optional<ItemWrite>&& mine,
      std::optional<ItemWrite>&& theirs) {
    co_return absl::UnimplementedError("this store writes one entry at a time");
  }
  virtual Task<absl::StatusOr<bool>> UserExists(std::string user) = 0;
  virtual Task<absl::StatusOr<int64_t>> EntryCount(std::string user) = 0;
};

}  // namespace xc
