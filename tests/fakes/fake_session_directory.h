#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "services/presence/session_directory.h"

namespace xc::testing {

// An in-memory SessionDirectory with the same contract as the Redis one.
class FakeSessionDirectory final : public SessionDirectory {
 public:
  absl::StatusOr<std::string> Bind(const Jid& bare, absl::string_view resource,
                                   absl::string_view gateway_id) override;
  absl::StatusOr<std::optional<xmpp::store::v1::SessionRecord>> Remove(const Jid& full) override;
  absl::StatusOr<std::vector<SessionEntry>> List(const Jid& bare) override;
  absl::Status Update(const Jid& full, const xmpp::store::v1::SessionRecord& record) override;
  absl::Status SetLastPresence(const Jid& full, absl::string_view xml) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LastPresences(
      const Jid& bare) override;
  absl::Status SetLastUnavailable(const Jid& bare, absl::Time when) override;
  absl::StatusOr<std::optional<absl::Time>> LastUnavailable(const Jid& bare) override;
  absl::StatusOr<std::vector<std::string>> GatewaySessions(absl::string_view gateway) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::map<std::string, xmpp::store::v1::SessionRecord>> sessions_;
  std::map<std::string, std::map<std::string, std::string>> presence_;
  std::map<std::string, absl::Time> last_unavailable_;
  int counter_ = 0;
};

}  // namespace xc::testing
