#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "core/async/task.h"
#include "core/event/event_loop.h"
#include "core/grpc/unary_call.h"
#include "core/metrics/metrics.h"
#include "grpcpp/grpcpp.h"

namespace xc {

struct CallBatcherOptions {
  // Calls in flight at once; while all are out, new units wait and ride the next call together.
  int max_in_flight = 4;
  int max_units_per_call = 128;
  // A call takes no more units once it holds this many entries (a unit is never split, so the
  // last one may go over): what is in flight stays bounded when units carry several entries.
  int max_entries_per_call = 128;
  absl::Duration timeout = absl::Seconds(5);
  // Optional: calls and units per call (how well batching works under the current load).
  metrics::Histogram* seconds = nullptr;
  metrics::Histogram* units_per_call = nullptr;
};

// Adaptive batching of one unary method on the loop: units added during a loop turn leave
// together at the end of the turn, in one call; while max_in_flight calls are out, units wait
// and leave together when one comes back. Light load: one unit per call, no added delay. Heavy
// load: few large calls, so the per-call cost of gRPC (HTTP/2 frames, metadata, threads) is
// shared by many units. A unit never spans two calls, so what one unit carries stays in order.
//
// Loop thread only; `start` issues the call on the process's GrpcQueue (UnaryStart, or
// StreamCalls::AsStart), whose `done` runs on the loop. `start` may take the request's content
// (StreamCalls moves it into a stream frame); the response must be filled by `done`.
template <typename Request, typename Response>
class CallBatcher {
 public:
  using Start = StartUnaryFn<Request, Response>;
  // Where a unit's entries sit in the request (and in a response that answers entry by entry).
  struct Slice {
    int first = 0;  // index of the unit's first entry in the request's repeated field
    int count = 0;
  };
  // The call's status and response, shared by all units of the call (read your slice).
  using Done =
      absl::AnyInvocable<void(const grpc::Status&, std::shared_ptr<const Response>, Slice)>;
  // Appends one unit's entries to the request; returns how many it appended.
  using Fill = absl::FunctionRef<int(Request*)>;

  CallBatcher(EventLoop* loop, Start start, CallBatcherOptions options = {})
      : loop_(loop), start_(std::move(start)), options_(options),
        alive_(std::make_shared<bool>(true)) {}
  CallBatcher(const CallBatcher&) = delete;
  CallBatcher& operator=(const CallBatcher&) = delete;

  void Add(Fill fill, Done done) {
    if (queue_.empty() ||
        static_cast<int>(queue_.back().units.size()) >= options_.max_units_per_call ||
        queue_.back().entries >= options_.max_entries_per_call) {
      queue_.emplace_back();
    }
    Pending& p = queue_.back();
    Unit unit;
    unit.slice.first = p.entries;
    unit.slice.count = fill(&p.request);
    p.entries += unit.slice.count;
    unit.done = std::move(done);
    p.units.push_back(std::move(unit));
    if (!flush_scheduled_) {
      flush_scheduled_ = true;
      std::weak_ptr<bool> alive = alive_;
      loop_->Defer([this, alive] {
        if (alive.expired()) return;
        flush_scheduled_ = false;
        Flush();
      });
    }
  }

  struct Answer {
    grpc::Status status;
    std::shared_ptr<const Response> response;
    Slice slice;
  };
  // co_await Call(fill) → Answer: the call's status, its response and the unit's slice.
  auto Call(Fill fill) {
    return AwaitCallback<Answer>([this, fill](auto resume) mutable {
      Add(fill, [resume = std::move(resume)](const grpc::Status& status,
                                             std::shared_ptr<const Response> response,
                                             Slice slice) mutable {
        resume(Answer{status, std::move(response), slice});
      });
    });
  }

  int in_flight() const { return in_flight_; }
  // Every call is out: what is added now waits for one to come back.
  bool saturated() const { return in_flight_ >= options_.max_in_flight; }

 private:
  struct Unit {
    Slice slice;
    Done done;
  };
  struct Pending {
    Request request;
    int entries = 0;
    std::vector<Unit> units;
  };
  struct InFlight {
    grpc::ClientContext context;
    Request request;
    std::shared_ptr<Response> response = std::make_shared<Response>();
    std::vector<Unit> units;
    int64_t start_ns = 0;
  };

  void Flush() {
    while (in_flight_ < options_.max_in_flight && !queue_.empty()) {
      auto call = std::make_shared<InFlight>();
      call->request = std::move(queue_.front().request);
      call->units = std::move(queue_.front().units);
      queue_.pop_front();
      call->context.set_deadline(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(absl::ToInt64Milliseconds(options_.timeout)));
      call->start_ns = EventLoop::NowNanos();
      if (options_.units_per_call != nullptr) {
        options_.units_per_call->Observe(static_cast<double>(call->units.size()));
      }
      ++in_flight_;
      std::weak_ptr<bool> alive = alive_;
      start_(&call->context, &call->request, call->response.get(),
             [this, alive, call](grpc::Status status) {
               if (alive.expired()) return;
               Complete(*call, status);
             });
    }
  }

  void Complete(InFlight& call, const grpc::Status& status) {
    --in_flight_;
    if (options_.seconds != nullptr) {
      options_.seconds->Observe(static_cast<double>(EventLoop::NowNanos() - call.start_ns) * 1e-9);
    }
    std::vector<Unit> units = std::move(call.units);
    // Units whose turn came while this call was out leave now, before the answers below add
    // more work, so that they do not wait for one more call.
    Flush();
    std::shared_ptr<const Response> response = call.response;
    for (Unit& unit : units) unit.done(status, response, unit.slice);
  }

  EventLoop* const loop_;
  const Start start_;
  const CallBatcherOptions options_;
  std::shared_ptr<bool> alive_;
  std::deque<Pending> queue_;
  int in_flight_ = 0;
  bool flush_scheduled_ = false;
};

}  // namespace xc
