#pragma once

#include <memory>

#include "core/grpc/grpc_queue.h"
#include "core/metrics/metrics.h"
#include "core/redis/async_redis_client.h"
#include "services/presence/gateway_deliverer.h"

namespace xc {

// GatewayDeliverer over gRPC, its calls on `queue` (and its work on the queue's loop); gateway
// addresses come from the registry in Redis (each gateway registers id → address), and each
// gateway gets a channel and a CallBatcher: what many inputs deliver to one gateway during a
// loop turn travels in one Deliver call.
// Metrics: xc_router_deliver_seconds (router→gateway hop), delivered stanzas, failures, and
// xc_router_deliver_batch_units (inputs per Deliver call).
std::unique_ptr<GatewayDeliverer> NewGrpcGatewayDeliverer(GrpcQueue* queue, AsyncRedisClient* redis,
                                                          metrics::Registry* registry);

}  // namespace xc
