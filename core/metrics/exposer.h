#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "core/metrics/metrics.h"

namespace xc::metrics {

// The admin HTTP port of a service: /metrics (Prometheus text 0.0.4), /livez (the process
// answers: never depends on Redis), /readyz (`ready()` says whether to take traffic).
//
// A small HTTP/1.1 server of its own (GET and HEAD, one request per connection) on one thread,
// so that the services link no HTTP library: it polls up to 64 connections at once and closes
// any that has not sent its request head within 8 KB and 10 s, so a slow or hostile client
// cannot hold the port. `registry` and `ready` are used from that thread; `registry` must
// outlive the exposer.
class Exposer {
 public:
  ~Exposer();
  Exposer(const Exposer&) = delete;
  Exposer& operator=(const Exposer&) = delete;

  // `address` is "host:port", "[v6host]:port" or ":port" / "port" (all interfaces); port 0
  // picks a free port (see port()).
  static absl::StatusOr<std::unique_ptr<Exposer>> Start(const std::string& address,
                                                        const Registry* registry,
                                                        std::function<bool()> ready);

  int port() const { return port_; }

 private:
  struct Connection;

  Exposer() = default;
  void Run();
  // Reads, answers or drains one connection as `revents` allow; false once it should close.
  bool Step(Connection& c, short revents, std::chrono::steady_clock::time_point now) const;
  // The whole answer (status line, headers, body) to one request head.
  std::string Respond(std::string_view request_head) const;

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: the destructor stops the thread through it
  int port_ = 0;
  const Registry* registry_ = nullptr;
  std::function<bool()> ready_;
  std::thread thread_;
};

// Adds `<prefix>_build_info{version=...} 1`.
void AddBuildInfo(Registry* registry, const std::string& prefix);

}  // namespace xc::metrics
