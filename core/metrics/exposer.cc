#include "core/metrics/exposer.h"

#include <civetweb.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace xc::metrics {
namespace {

void Reply(mg_connection* conn, int status, const char* content_type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

}  // namespace

Exposer::~Exposer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

absl::StatusOr<std::unique_ptr<Exposer>> Exposer::Start(const std::string& address,
                                                        const Registry* registry,
                                                        std::function<bool()> ready) {
  std::unique_ptr<Exposer> e(new Exposer());
  e->registry_ = registry;
  e->ready_ = std::move(ready);
  const char* options[] = {"listening_ports", address.c_str(), "num_threads", "2", nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  e->ctx_ = mg_start(&callbacks, nullptr, options);
  if (e->ctx_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", address));
  }
  mg_set_request_handler(
      e->ctx_, "/metrics",
      [](mg_connection* conn, void* data) -> int {
        auto* self = static_cast<Exposer*>(data);
        Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", self->registry_->Serialize());
        return 200;
      },
      e.get());
  mg_set_request_handler(
      e->ctx_, "/livez",
      [](mg_connection* conn, void*) -> int {
        Reply(conn, 200, "text/plain", "ok\n");
        return 200;
      },
      nullptr);
  mg_set_request_handler(
      e->ctx_, "/readyz",
      [](mg_connection* conn, void* data) -> int {
        auto* self = static_cast<Exposer*>(data);
        bool ok = !self->ready_ || self->ready_();
        Reply(conn, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n");
        return ok ? 200 : 503;
      },
      e.get());
  return e;
}

void AddBuildInfo(Registry* registry, const std::string& prefix) {
  registry->AddGauge(prefix + "_build_info", "Build information; always 1.")
      .Add({{"version", "0.1.0"}})
      .Set(1);
}

}  // namespace xc::metrics
