#pragma once

#include "absl/time/time.h"
#include "core/async/task.h"
#include "core/redis/async_redis_client.h"
#include "services/presence/presence_router.h"
#include "services/presence/session_directory.h"

namespace xc {

// Finds gateways whose heartbeat key expired (killed, not shut down) and ends their sessions,
// so contacts receive unavailable. One router replica at a time holds the sweep lock.
// Returns the number of sessions ended.
// A coroutine on the router's loop.
Task<absl::StatusOr<int>> ReapDeadGateways(AsyncRedisClient* redis, SessionDirectory* directory,
                                           PresenceRouter* router, std::string owner_id);

}  // namespace xc
