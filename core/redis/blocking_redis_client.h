#pragma once

#include <memory>

#include "core/event/event_loop.h"
#include "core/redis/async_redis_client.h"
#include "core/redis/redis_client.h"

namespace xc {

// The blocking RedisClient face of an AsyncRedisClient, for threads that are not the client's
// loop (tools, heartbeats, sweeps, password hashing workers): each call is posted to the loop
// and the calling thread waits for its answer. Calling it on the loop's own thread is a bug
// (it would wait for itself) and aborts. Thread-safe. `async` must outlive it.
std::unique_ptr<RedisClient> NewBlockingRedisClient(AsyncRedisClient* async);

// The same, owning `async` and running `loop` (the one `async` was made on) on a thread of its
// own until destroyed.
std::unique_ptr<RedisClient> NewBlockingRedisClientWithLoop(std::unique_ptr<EventLoop> loop,
                                                            std::unique_ptr<AsyncRedisClient> async);

}  // namespace xc
