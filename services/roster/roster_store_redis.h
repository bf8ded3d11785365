#pragma once

#include <memory>

#include "core/redis/async_redis_client.h"
#include "services/roster/roster_store.h"

namespace xc {

// RosterStore on Redis (layout in docs/storage.md): a hash of records, a version counter, a
// sorted-set change log (contact → version of its last change, tombstones included) and a hash
// of stored subscribe stanzas, all under the user's hash tag. `redis` must outlive the store.
std::unique_ptr<RosterStore> NewRedisRosterStore(AsyncRedisClient* redis);

}  // namespace xc
