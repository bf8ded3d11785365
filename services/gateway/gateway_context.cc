#include "services/gateway/gateway_context.h"

#include <algorithm>

#include "services/gateway/client_session.h"

namespace xc {

void SessionRegistry::Add(const std::string& full_jid, std::weak_ptr<ClientSession> session) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[full_jid] = std::move(session);
}

void SessionRegistry::Remove(const std::string& full_jid, const ClientSession* session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(full_jid);
  if (it == sessions_.end()) return;
  std::shared_ptr<ClientSession> current = it->second.lock();
  if (!current || current.get() == session) sessions_.erase(it);
}

std::shared_ptr<ClientSession> SessionRegistry::Find(const std::string& full_jid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(full_jid);
  return it == sessions_.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<ClientSession>> SessionRegistry::All() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ClientSession>> out;
  for (auto& [jid, weak] : sessions_) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

bool GatewayContext::ServesDomain(absl::string_view domain) const {
  return std::find(config.domains.begin(), config.domains.end(), domain) != config.domains.end();
}

}  // namespace xc
