#include "core/metrics/grpc_server_metrics.h"

#include <chrono>
#include <string>
#include <utility>

namespace xc::metrics {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",           "Canceled",         "Unknown",
                                 "InvalidArgument", "DeadlineExceeded", "NotFound",
                                 "AlreadyExists", "PermissionDenied", "ResourceExhausted",
                                 "FailedPrecondition", "Aborted",     "OutOfRange",
                                 "Unimplemented", "Internal",         "Unavailable",
                                 "DataLoss",      "Unauthenticated"};
  int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "Unknown";
}

// "/pkg.Service/Method" → ("pkg.Service", "Method").
std::pair<std::string, std::string> SplitMethod(const char* method) {
  std::string full = method != nullptr ? method : "";
  size_t slash = full.rfind('/');
  std::string service = slash != std::string::npos && slash > 0 ? full.substr(1, slash - 1) : full;
  std::string name = slash != std::string::npos ? full.substr(slash + 1) : full;
  return {std::move(service), std::move(name)};
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(const GrpcServerFamilies& f, std::pair<std::string, std::string> name)
      : metrics_(f, std::move(name.first), std::move(name.second)),
        start_(std::chrono::steady_clock::now()) {
    metrics_.Started();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_.Handled(
          methods->GetSendStatus().error_code(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    methods->Proceed();
  }

 private:
  CallMetrics metrics_;
  std::chrono::steady_clock::time_point start_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(Registry* r) : f_(r) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(f_, SplitMethod(info->method()));
  }

 private:
  GrpcServerFamilies f_;
};

}  // namespace

GrpcServerFamilies::GrpcServerFamilies(Registry* r)
    : started(&r->AddCounter("grpc_server_started_total", "RPCs started on the server.")),
      handled(&r->AddCounter("grpc_server_handled_total", "RPCs completed on the server.")),
      seconds(&r->AddHistogram("grpc_server_handling_seconds",
                               "Time from the start of an RPC to its status.")) {}

// service_ and method_ are declared last, so the labels are made from the parameters before
// these move into them.
CallMetrics::CallMetrics(const GrpcServerFamilies& f, std::string service, std::string method)
    : handled_(f.handled),
      started_(&f.started->Add({{"grpc_service", service}, {"grpc_method", method}})),
      handled_ok_(&f.handled->Add(
          {{"grpc_service", service}, {"grpc_method", method}, {"grpc_code", "OK"}})),
      seconds_(&f.seconds->Add({{"grpc_service", service}, {"grpc_method", method}})),
      service_(std::move(service)),
      method_(std::move(method)) {}

void CallMetrics::Started() const { started_->Increment(); }

void CallMetrics::Handled(grpc::StatusCode code, double seconds) const {
  Counter* handled = code == grpc::StatusCode::OK
                         ? handled_ok_
                         : &handled_->Add({{"grpc_service", service_},
                                           {"grpc_method", method_},
                                           {"grpc_code", CodeName(code)}});
  handled->Increment();
  seconds_->Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewGrpcServerMetrics(
    Registry* registry) {
  return std::make_unique<Factory>(registry);
}

}  // namespace xc::metrics
