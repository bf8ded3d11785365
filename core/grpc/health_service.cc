#include "core/grpc/health_service.h"

#include <utility>

#include "core/async/task.h"

namespace xc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch call: requested, then written to whenever the status changes (one write at a
// time; a change during a write is sent after it, as the latest status). It ends when the
// client cancels or the server shuts down (the done notification), and deletes itself once
// no operation of it is in flight.
class HealthService::Watch {
 public:
  static void Accept(HealthService* health) {
    GrpcQueue* queue = health->queue_;
    if (!queue->Enter()) return;
    auto* w = new Watch(health);
    // Before the call is requested; it fires only for a call that arrives (counted then).
    w->context_.AsyncNotifyWhenDone(&w->done_op_);
    w->ops_ = 1;
    health->async_.RequestWatch(&w->context_, &w->request_, &w->writer_, queue->cq(),
                                queue->server_cq(), &w->arrived_op_);
  }

  // The status may have changed: send it unless that is what the client last got.
  void Update() {
    if (over_ || writing_) return;
    const Status now = health_->StatusOf(request_.service());
    if (sent_ && now == last_) return;
    sent_ = true;
    last_ = now;
    out_.set_status(now);
    writing_ = true;
    ++ops_;
    writer_.Write(out_, &wrote_op_);
  }

 private:
  explicit Watch(HealthService* health) : health_(health), writer_(&context_) {}

  void OnArrived(bool ok) {
    --ops_;
    if (!ok) {  // never arrived: the server is shutting down
      over_ = true;
      return MaybeDelete();
    }
    ++ops_;  // the done notification, now certain to come
    Accept(health_);
    health_->watchers_.insert(this);
    Update();
  }

  void OnWrote(bool ok) {
    --ops_;
    writing_ = false;
    if (!ok) over_ = true;
    if (!over_) Update();  // a change that came during the write
    MaybeDelete();
  }

  void OnDone(bool) {
    --ops_;
    over_ = true;
    MaybeDelete();
  }

  void MaybeDelete() {
    if (!over_ || ops_ > 0) return;
    health_->watchers_.erase(this);
    GrpcQueue* queue = health_->queue_;
    delete this;
    queue->Leave();
  }

  HealthService* const health_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  HealthCheckResponse out_;
  BoundOp<Watch> arrived_op_{this, &Watch::OnArrived};
  BoundOp<Watch> wrote_op_{this, &Watch::OnWrote};
  BoundOp<Watch> done_op_{this, &Watch::OnDone};
  int ops_ = 0;
  bool writing_ = false;
  bool sent_ = false;
  bool over_ = false;
  Status last_ = HealthCheckResponse::UNKNOWN;
};

HealthService::Status HealthService::StatusOf(const std::string& service) const {
  if (!service.empty()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_.load() ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::Serve(GrpcQueue* queue) {
  queue_ = queue;
  ServeUnary(queue, &async_, &grpc::health::v1::Health::AsyncService::RequestCheck,
             [this](const HealthCheckRequest& request,
                    HealthCheckResponse* response) -> Task<grpc::Status> {
               const Status status = StatusOf(request.service());
               if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
                 co_return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
               }
               response->set_status(status);
               co_return grpc::Status::OK;
             });
  Watch::Accept(this);
}

void HealthService::SetServing(bool serving) {
  if (serving_.exchange(serving) == serving || queue_ == nullptr) return;
  queue_->loop()->Post([this] { Notify(); });
}

void HealthService::Notify() {
  for (Watch* w : watchers_) w->Update();
}

}  // namespace xc
