#pragma once

#include <memory>
#include <vector>

#include "core/metrics/metrics.h"
#include "grpcpp/support/server_interceptor.h"

namespace xc::metrics {

// gRPC server metrics with the usual names: grpc_server_started_total,
// grpc_server_handled_total{grpc_service,grpc_method,grpc_code} and
// grpc_server_handling_seconds (histogram). Add the returned factory to the ServerBuilder
// (experimental().SetInterceptorCreators). `registry` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewGrpcServerMetrics(
    Registry* registry);

}  // namespace xc::metrics
