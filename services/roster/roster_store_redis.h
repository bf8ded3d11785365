#pragma once

#include <memory>

#include "core/redis/async_redis_client.h"
#include "services/roster/roster_store.h"

namespace xc {

// RosterStore on Redis (layout in docs/storage.md): a hash of records, a version counter, a
// sorted-set change log (contact → version of its last change, tombstones included) and a hash
// of stored subscribe stanzas, all under the user's hash tag. `redis` must outlive the store.
// `single_node`: every key is on one Redis server (standalone, not Redis Cluster), so both
// entries of a subscription pair can change in one script (WritePair).
std::unique_ptr<RosterStore> NewRedisRosterStore(AsyncRedisClient* redis, bool single_node);

}  // namespace xc
