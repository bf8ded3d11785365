#include "services/presence/gateway_reaper.h"

#include "core/base/log.h"
#include "core/store/keys.h"

namespace xc {

Task<absl::StatusOr<int>> ReapDeadGateways(AsyncRedisClient* redis, SessionDirectory* directory,
                                           PresenceRouter* router, std::string owner_id) {
  RedisArgv lock_cmd = {"SET", "reaper:lock", owner_id, "NX", "PX", "4000"};
  absl::StatusOr<RedisReply> lock = co_await redis->Command(std::move(lock_cmd));
  if (!lock.ok()) co_return lock.status();
  if (lock->is_nil()) co_return 0;  // another replica sweeps now
  RedisArgv list = {"HKEYS", keys::Gateways()};
  absl::StatusOr<RedisReply> gateways = co_await redis->Command(std::move(list));
  if (!gateways.ok()) co_return gateways.status();
  int ended = 0;
  for (const RedisReply& g : gateways->elements) {
    RedisArgv beat = {"EXISTS", keys::GatewayAlive(g.str)};
    absl::StatusOr<RedisReply> alive = co_await redis->Command(std::move(beat));
    if (!alive.ok()) co_return alive.status();
    if (alive->integer == 1) continue;
    absl::StatusOr<std::vector<std::string>> sessions = co_await directory->GatewaySessions(g.str);
    if (!sessions.ok()) co_return sessions.status();
    XC_LOG(WARNING) << "gateway " << g.str << " missed its heartbeat; ending " << sessions->size()
                    << " sessions";
    for (const std::string& full : *sessions) {
      absl::StatusOr<Jid> jid = Jid::Parse(full);
      if (!jid.ok()) continue;
      absl::Status s = co_await router->EndSession(*jid);
      if (!s.ok()) co_return s;
      ++ended;
    }
    std::vector<RedisArgv> forget = {{"DEL", keys::GatewaySessions(g.str)},
                                     {"HDEL", keys::Gateways(), g.str}};
    (void)co_await redis->Pipeline(std::move(forget));
  }
  co_return ended;
}

}  // namespace xc
