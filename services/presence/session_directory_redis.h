#pragma once

#include <memory>

#include "core/redis/async_redis_client.h"
#include "services/presence/session_directory.h"

namespace xc {

std::unique_ptr<SessionDirectory> NewRedisSessionDirectory(AsyncRedisClient* redis);

}  // namespace xc
