#include "core/metrics/grpc_server_metrics.h"

#include <chrono>
#include <string>

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

struct Families {
  Family<Counter>* started;
  Family<Counter>* handled;
  Family<Histogram>* seconds;
};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(const Families* f, const char* method) : f_(f) {
    // "/pkg.Service/Method"
    std::string full = method != nullptr ? method : "";
    size_t slash = full.rfind('/');
    service_ = slash != std::string::npos && slash > 0 ? full.substr(1, slash - 1) : full;
    method_ = slash != std::string::npos ? full.substr(slash + 1) : full;
    start_ = std::chrono::steady_clock::now();
    f_->started->Add({{"grpc_service", service_}, {"grpc_method", method_}}).Increment();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      f_->handled
          ->Add({{"grpc_service", service_},
                 {"grpc_method", method_},
                 {"grpc_code", CodeName(status.error_code())}})
          .Increment();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      f_->seconds->Add({{"grpc_service", service_}, {"grpc_method", method_}}).Observe(secs);
    }
    methods->Proceed();
  }

 private:
  const Families* f_;
  std::string service_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

Families FamiliesOf(Registry* r) {
  return {&r->AddCounter("grpc_server_started_total", "RPCs started on the server."),
          &r->AddCounter("grpc_server_handled_total", "RPCs completed on the server."),
          &r->AddHistogram("grpc_server_handling_seconds",
                           "Time from the start of an RPC to its status.")};
}

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(Registry* r) : f_(FamiliesOf(r)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(&f_, info->method());
  }

 private:
  Families f_;
};

}  // namespace

CallMetrics::CallMetrics(Registry* registry, const std::string& service, const std::string& method)
    : service_(service), method_(method) {
  const Families f = FamiliesOf(registry);
  handled_ = f.handled;
  started_ = &f.started->Add({{"grpc_service", service_}, {"grpc_method", method_}});
  handled_ok_ = &f.handled->Add(
      {{"grpc_service", service_}, {"grpc_method", method_}, {"grpc_code", "OK"}});
  seconds_ = &f.seconds->Add({{"grpc_service", service_}, {"grpc_method", method_}});
}

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
