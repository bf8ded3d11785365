#include "tests/fakes/fake_session_directory.h"

namespace xc::testing {

absl::StatusOr<std::string> FakeSessionDirectory::BindNow(const Jid& bare,
                                                          absl::string_view resource,
                                                          absl::string_view gateway_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& mine = sessions_[bare.BareString()];
  std::string r = resource.empty() ? "gen" + std::to_string(++counter_) : std::string(resource);
  if (mine.count(r)) r += "-" + std::to_string(++counter_);
  xmpp::store::v1::SessionRecord record;
  record.set_gateway_id(std::string(gateway_id));
  mine[r] = record;
  return r;
}

std::optional<xmpp::store::v1::SessionRecord> FakeSessionDirectory::RemoveNow(const Jid& full) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& mine = sessions_[full.BareString()];
  auto it = mine.find(full.resource());
  if (it == mine.end()) return std::nullopt;
  xmpp::store::v1::SessionRecord r = it->second;
  mine.erase(it);
  presence_[full.BareString()].erase(full.resource());
  return r;
}

std::vector<SessionEntry> FakeSessionDirectory::ListNow(const Jid& bare) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SessionEntry> out;
  for (const auto& [resource, record] : sessions_[bare.BareString()]) {
    out.push_back({resource, record});
  }
  return out;
}

absl::Status FakeSessionDirectory::UpdateNow(const Jid& full,
                                             const xmpp::store::v1::SessionRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& mine = sessions_[full.BareString()];
  auto it = mine.find(full.resource());
  if (it == mine.end()) return absl::NotFoundError("no such session");
  it->second = record;
  return absl::OkStatus();
}

std::optional<absl::Time> FakeSessionDirectory::LastUnavailableNow(const Jid& bare) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = last_unavailable_.find(bare.BareString());
  if (it == last_unavailable_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> FakeSessionDirectory::GatewaySessionsNow(absl::string_view gateway) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [bare, mine] : sessions_) {
    for (const auto& [resource, record] : mine) {
      if (record.gateway_id() == gateway) out.push_back(bare + "/" + resource);
    }
  }
  return out;
}

}  // namespace xc::testing
