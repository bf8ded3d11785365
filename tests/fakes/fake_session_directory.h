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
  Task<absl::StatusOr<std::string>> Bind(const Jid& bare, absl::string_view resource,
                                         absl::string_view gateway_id) override {
    co_return BindNow(bare, resource, gateway_id);
  }
  Task<absl::StatusOr<std::optional<xmpp::store::v1::SessionRecord>>> Remove(
      const Jid& full) override {
    co_return RemoveNow(full);
  }
  Task<absl::StatusOr<std::vector<SessionEntry>>> List(const Jid& bare) override {
    co_return ListNow(bare);
  }
  Task<absl::StatusOr<std::vector<std::vector<SessionEntry>>>> ListMany(
      const std::vector<Jid>& bares) override {
    std::vector<std::vector<SessionEntry>> out;
    for (const Jid& bare : bares) out.push_back(ListNow(bare));
    co_return out;
  }
  Task<absl::Status> Update(const Jid& full,
                            const xmpp::store::v1::SessionRecord& record) override {
    co_return UpdateNow(full, record);
  }
  Task<absl::Status> SetLastPresence(const Jid& full, absl::string_view xml) override {
    std::lock_guard<std::mutex> lock(mu_);
    presence_[full.BareString()][full.resource()] = std::string(xml);
    co_return absl::OkStatus();
  }
  Task<absl::StatusOr<std::vector<std::pair<std::string, std::string>>>> LastPresences(
      const Jid& bare) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& kv : presence_[bare.BareString()]) out.push_back(kv);
    co_return out;
  }
  Task<absl::StatusOr<std::vector<PresenceView>>> PresenceOf(
      const std::vector<Jid>& bares) override {
    std::vector<PresenceView> out;
    for (const Jid& bare : bares) {
      PresenceView view;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& kv : presence_[bare.BareString()]) view.presences.push_back(kv);
      }
      view.last_unavailable = LastUnavailableNow(bare);
      out.push_back(std::move(view));
    }
    co_return out;
  }
  Task<absl::Status> SetLastUnavailable(const Jid& bare, absl::Time when) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_unavailable_[bare.BareString()] = when;
    co_return absl::OkStatus();
  }
  Task<absl::StatusOr<std::optional<absl::Time>>> LastUnavailable(const Jid& bare) override {
    co_return LastUnavailableNow(bare);
  }
  Task<absl::StatusOr<std::vector<std::string>>> GatewaySessions(
      absl::string_view gateway) override {
    co_return GatewaySessionsNow(gateway);
  }

 private:
  absl::StatusOr<std::string> BindNow(const Jid& bare, absl::string_view resource,
                                      absl::string_view gateway_id);
  std::optional<xmpp::store::v1::SessionRecord> RemoveNow(const Jid& full);
  std::vector<SessionEntry> ListNow(const Jid& bare);
  absl::Status UpdateNow(const Jid& full, const xmpp::store::v1::SessionRecord& record);
  std::optional<absl::Time> LastUnavailableNow(const Jid& bare);
  std::vector<std::string> GatewaySessionsNow(absl::string_view gateway);

  std::mutex mu_;
  std::map<std::string, std::map<std::string, xmpp::store::v1::SessionRecord>> sessions_;
  std::map<std::string, std::map<std::string, std::string>> presence_;
  std::map<std::string, absl::Time> last_unavailable_;
  int counter_ = 0;
};

}  // namespace xc::testing
