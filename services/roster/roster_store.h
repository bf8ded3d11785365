#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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

// Per-user roster storage. Every method touches one user's keys only, and WriteItem is atomic
// (compare-and-swap), so concurrent replicas never lose an update: a lost race returns Aborted
// and the caller re-reads. Thread-safe.
class RosterStore {
 public:
  virtual ~RosterStore() = default;
  virtual absl::StatusOr<std::optional<std::string>> GetItem(absl::string_view user,
                                                            absl::string_view contact) = 0;
  // Returns the new roster version when bumped, else 0. Aborted when `expected` is stale.
  virtual absl::StatusOr<int64_t> WriteItem(absl::string_view user, absl::string_view contact,
                                            const ItemWrite& write) = 0;
  virtual absl::StatusOr<StoredRoster> ReadRoster(absl::string_view user) = 0;
  // Current version, and every entry changed after `since`, oldest change first.
  virtual absl::StatusOr<std::pair<int64_t, std::vector<RosterChange>>> ChangesSince(
      absl::string_view user, int64_t since) = 0;
  virtual absl::StatusOr<bool> UserExists(absl::string_view user) = 0;
  virtual absl::StatusOr<int64_t> EntryCount(absl::string_view user) = 0;
};

}  // namespace xc
