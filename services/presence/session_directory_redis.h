#pragma once

#include <memory>

#include "core/redis/redis_client.h"
#include "services/presence/session_directory.h"

namespace xc {

std::unique_ptr<SessionDirectory> NewRedisSessionDirectory(RedisClient* redis);

}  // namespace xc
