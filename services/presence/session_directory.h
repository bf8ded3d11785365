#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/async/task.h"
#include "core/jid/jid.h"
#include "proto/xmpp/store/v1/records.pb.h"

namespace xc {

// What a probe of a user learns: the last broadcast presence of each available resource, and
// when the user last went offline.
struct PresenceView {
  std::vector<std::pair<std::string, std::string>> presences;  // resource → presence XML
  std::optional<absl::Time> last_unavailable;
};

struct SessionEntry {
  std::string resource;
  xmpp::store::v1::SessionRecord record;
};

// Who is online where: per user, each bound resource with its gateway and flags, its last
// broadcast presence, and per gateway the set of its sessions (found without a keyspace scan).
// Coroutines on the directory's loop; arguments must stay valid until the call ends (await it
// where it is made).
class SessionDirectory {
 public:
  virtual ~SessionDirectory() = default;
  // Binds `resource` for `bare` on `gateway_id`; when the resource is taken, binds a fresh
  // server-chosen one instead (conflict policy 1). Returns the resource bound.
  virtual Task<absl::StatusOr<std::string>> Bind(const Jid& bare, absl::string_view resource,
                                                 absl::string_view gateway_id) = 0;
  // Removes the session; returns its record, or nullopt if it was not there.
  virtual Task<absl::StatusOr<std::optional<xmpp::store::v1::SessionRecord>>> Remove(
      const Jid& full) = 0;
  virtual Task<absl::StatusOr<std::vector<SessionEntry>>> List(const Jid& bare) = 0;
  // The sessions of many users in one round trip per node (what a broadcast needs), in order.
  virtual Task<absl::StatusOr<std::vector<std::vector<SessionEntry>>>> ListMany(
      const std::vector<Jid>& bares) = 0;
  // Replaces the record if the session still exists (NotFound otherwise).
  virtual Task<absl::Status> Update(const Jid& full,
                                    const xmpp::store::v1::SessionRecord& record) = 0;
  virtual Task<absl::Status> SetLastPresence(const Jid& full, absl::string_view xml) = 0;
  // resource → last broadcast presence XML, for the available resources of `bare`.
  virtual Task<absl::StatusOr<std::vector<std::pair<std::string, std::string>>>> LastPresences(
      const Jid& bare) = 0;
  // The presence views of many users in one round trip per node (probes), in order.
  virtual Task<absl::StatusOr<std::vector<PresenceView>>> PresenceOf(
      const std::vector<Jid>& bares) = 0;
  virtual Task<absl::Status> SetLastUnavailable(const Jid& bare, absl::Time when) = 0;
  virtual Task<absl::StatusOr<std::optional<absl::Time>>> LastUnavailable(const Jid& bare) = 0;
  virtual Task<absl::StatusOr<std::vector<std::string>>> GatewaySessions(
      absl::string_view gateway) = 0;
};

}  // namespace xc
