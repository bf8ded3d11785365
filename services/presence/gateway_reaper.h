#pragma once

#include "absl/time/time.h"
#include "core/redis/redis_client.h"
#include "services/presence/presence_router.h"
#include "services/presence/session_directory.h"

namespace xc {

// Finds gateways whose heartbeat key expired (killed, not shut down) and ends their sessions,
// so contacts receive unavailable. One router replica at a time holds the sweep lock.
// Returns the number of sessions ended.
absl::StatusOr<int> ReapDeadGateways(RedisClient* redis, SessionDirectory* directory,
                                     PresenceRouter* router, absl::string_view owner_id);

}  // namespace xc
