#include "services/presence/gateway_reaper.h"

#include "core/base/log.h"
#include "core/store/keys.h"

namespace xc {

absl::StatusOr<int> ReapDeadGateways(RedisClient* redis, SessionDirectory* directory,
                                     PresenceRouter* router, absl::string_view owner_id) {
  absl::StatusOr<RedisReply> lock = redis->Command(
      {"SET", "reaper:lock", std::string(owner_id), "NX", "PX", "4000"});
  if (!lock.ok()) return lock.status();
  if (lock->is_nil()) return 0;  // another replica sweeps now
  absl::StatusOr<RedisReply> gateways = redis->Command({"HKEYS", keys::Gateways()});
  if (!gateways.ok()) return gateways.status();
  int ended = 0;
  for (const RedisReply& g : gateways->elements) {
    absl::StatusOr<RedisReply> alive = redis->Command({"EXISTS", keys::GatewayAlive(g.str)});
    if (!alive.ok()) return alive.status();
    if (alive->integer == 1) continue;
    absl::StatusOr<std::vector<std::string>> sessions = directory->GatewaySessions(g.str);
    if (!sessions.ok()) return sessions.status();
    XC_LOG(WARNING) << "gateway " << g.str << " missed its heartbeat; ending " << sessions->size()
                    << " sessions";
    for (const std::string& full : *sessions) {
      absl::StatusOr<Jid> jid = Jid::Parse(full);
      if (!jid.ok()) continue;
      absl::Status s = router->EndSession(*jid);
      if (!s.ok()) return s;
      ++ended;
    }
    (void)redis->Pipeline({{"DEL", keys::GatewaySessions(g.str)}, {"HDEL", keys::Gateways(), g.str}});
  }
  return ended;
}

}  // namespace xc
