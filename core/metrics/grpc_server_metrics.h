#pragma once

#include <memory>
#include <string>
#include <utility>
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

// The three families of a registry.
struct GrpcServerFamilies {
  explicit GrpcServerFamilies(Registry* registry);
  Family<Counter>* started;
  Family<Counter>* handled;
  Family<Histogram>* seconds;
};

// One method's calls in those metrics: every RPC's (the interceptor above), and calls that are
// not RPCs of their own, such as the frames of a stream that carries a unary method's calls
// (core/grpc/serve_stream.h), counted as calls of that method. Thread-safe; the registry must
// outlive it.
class CallMetrics {
 public:
  CallMetrics(const GrpcServerFamilies& families, std::string service, std::string method);
  CallMetrics(Registry* registry, std::string service, std::string method)
      : CallMetrics(GrpcServerFamilies(registry), std::move(service), std::move(method)) {}
  void Started() const;
  void Handled(grpc::StatusCode code, double seconds) const;

 private:
  Family<Counter>* handled_;
  Counter* started_;
  Counter* handled_ok_;
  Histogram* seconds_;
  std::string service_;
  std::string method_;
};

}  // namespace xc::metrics
