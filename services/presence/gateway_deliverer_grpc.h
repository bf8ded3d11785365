#pragma once

#include <memory>

#include "core/metrics/metrics.h"
#include "core/redis/redis_client.h"
#include "services/presence/gateway_deliverer.h"

namespace xc {

// GatewayDeliverer over gRPC; gateway addresses come from the registry in Redis (each gateway
// registers id → address) and channels are cached per gateway.
// Metrics: xc_router_deliver_seconds (router→gateway hop), delivered stanzas, failures.
std::unique_ptr<GatewayDeliverer> NewGrpcGatewayDeliverer(RedisClient* redis,
                                                          metrics::Registry* registry);

}  // namespace xc
