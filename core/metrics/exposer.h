#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/metrics/metrics.h"

struct mg_context;

namespace xc::metrics {

// The admin HTTP port of a service (civetweb): /metrics (Prometheus text 0.0.4), /livez (the
// process answers: never depends on Redis), /readyz (`ready()` says whether to take traffic).
class Exposer {
 public:
  ~Exposer();
  // `address` is "host:port" (port 0 is not supported by civetweb; pick a free one).
  static absl::StatusOr<std::unique_ptr<Exposer>> Start(const std::string& address,
                                                        const Registry* registry,
                                                        std::function<bool()> ready);

 private:
  Exposer() = default;
  mg_context* ctx_ = nullptr;
  const Registry* registry_ = nullptr;
  std::function<bool()> ready_;
};

// Adds `<prefix>_build_info{version=...} 1`.
void AddBuildInfo(Registry* registry, const std::string& prefix);

}  // namespace xc::metrics
