#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/event/event_loop.h"
#include "core/grpc/grpc_queue.h"
#include "core/grpc/unary_call.h"
#include "grpcpp/grpcpp.h"

namespace xc {

struct StreamCallsOptions {
  // Streams kept open. Each is opened through the channel's load balancer (round_robin over
  // the target's addresses), so a few streams spread one client's calls over a few replicas.
  // 0: no streams, every call unary through `fallback` (--grpc_streams=false).
  int streams = 4;
  // A stream older than this takes no new calls and is closed once its calls are answered, so
  // that replicas added since get streams. Below the servers' GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS
  // (30 s), so a stream is never cut by a connection the server has aged out.
  absl::Duration max_age = absl::Seconds(20);
  // How often deadlines are checked while calls are out.
  absl::Duration sweep = absl::Milliseconds(100);

  // The defaults, or the unary mode (streams = 0) when `enabled` is false.
  static StreamCallsOptions Enabled(bool enabled) {
    StreamCallsOptions o;
    if (!enabled) o.streams = 0;
    return o;
  }
};

// Unary-shaped calls carried as messages on long-lived bidirectional streams: one message out
// (Frame: id, request) and one back (Reply: id, code, message, response) per call, answers in
// any order. The same work as a unary call without the per-call HTTP/2 stream, metadata and
// completion tags (about 30% less CPU per exchange, measured in docs/performance.md).
//
// Everything runs on the queue's loop: Call() and the `done` callbacks, which the loop's
// completions of the streams' operations run. What a unary call would do, this does too: the
// deadline ends the call with DEADLINE_EXCEEDED, a stream that breaks fails its calls with its
// status (UNAVAILABLE when it ended cleanly) and the next call opens another. A server without
// the stream method (UNIMPLEMENTED) makes this call and every later one go unary through
// `fallback` (a frame keeps its request until answered, for that).
template <typename Frame, typename Reply>
class StreamCalls {
 public:
  using Request = std::remove_cvref_t<decltype(std::declval<Frame>().request())>;
  using Response = std::remove_cvref_t<decltype(std::declval<Reply>().response())>;
  using ReaderWriter = grpc::ClientAsyncReaderWriter<Frame, Reply>;
  // Prepares the stream: stub->PrepareAsyncMethod(context, cq).
  using Open =
      std::function<std::unique_ptr<ReaderWriter>(grpc::ClientContext*, grpc::CompletionQueue*)>;
  using Start = StartUnaryFn<Request, Response>;

  StreamCalls(GrpcQueue* queue, Open open, Start fallback, StreamCallsOptions options = {})
      : queue_(queue),
        open_(std::move(open)),
        fallback_(std::move(fallback)),
        options_(options),
        unimplemented_(std::make_shared<bool>(options.streams <= 0)),
        slots_(static_cast<size_t>(std::max(1, options.streams))) {}
  StreamCalls(const StreamCalls&) = delete;
  StreamCalls& operator=(const StreamCalls&) = delete;
  // Loop thread. Open streams are cancelled; their calls fail (CANCELLED) on the loop.
  ~StreamCalls() {
    if (sweep_timer_ != 0) queue_->loop()->Cancel(sweep_timer_);
    for (auto& s : slots_) {
      if (s) s->Cancel();
    }
    for (auto& s : retired_) s->Cancel();
  }

  // A StartUnaryFn over these streams (CallBatcher's Start). `request` is consumed (its content
  // moves into the frame); `response` must stay valid until `done`.
  Start AsStart() {
    return [this](grpc::ClientContext* context, Request* request, Response* response,
                  std::function<void(grpc::Status)> done) {
      if (*unimplemented_) {
        fallback_(context, request, response, std::move(done));  // the caller's context
      } else {
        Call(context->deadline(), request, response, std::move(done));
      }
    };
  }

  void Call(std::chrono::system_clock::time_point deadline, Request* request, Response* response,
            std::function<void(grpc::Status)> done) {
    if (*unimplemented_) return CallUnary(fallback_, deadline, request, response, std::move(done));
    const int64_t now = EventLoop::NowNanos();
    auto frame = std::make_shared<Frame>();
    frame->mutable_request()->Swap(request);
    frame->set_id(next_id_++);
    Pending call{frame, response, deadline, std::move(done)};
    std::shared_ptr<Stream>& slot = slots_[next_slot_++ % slots_.size()];
    if (slot && !slot->TakesCalls(now, options_.max_age)) {
      slot->Retire();
      retired_.push_back(std::move(slot));
      slot.reset();
    }
    if (!slot) {
      // None yet, or it broke or aged since: a fresh one (which may fail at once, like a
      // unary call to an unreachable server).
      slot = Stream::Begin(queue_, open_, fallback_, unimplemented_);
      if (!slot) return internal::RefuseCall(queue_, std::move(call.done));
    }
    slot->Send(std::move(call));
    ArmSweep();
  }

  // Streams open (taking calls or draining): for tests and metrics.
  int open_streams() const {
    int n = static_cast<int>(retired_.size());
    for (const auto& s : slots_) n += s && !s->ended() ? 1 : 0;
    return n;
  }

 private:
  struct Pending {
    std::shared_ptr<Frame> frame;  // kept until answered: re-sent unary if the server has no
                                   // stream method
    Response* response;
    std::chrono::system_clock::time_point deadline;  // as a unary call's: the system clock
    std::function<void(grpc::Status)> done;
  };

  // `request` as a unary call of its own, with its own context until it is answered (and `keep`,
  // the frame that holds the request, as long).
  static void CallUnary(const Start& fallback, std::chrono::system_clock::time_point deadline,
                        Request* request, Response* response,
                        std::function<void(grpc::Status)> done,
                        std::shared_ptr<Frame> keep = nullptr) {
    auto context = std::make_shared<grpc::ClientContext>();
    context->set_deadline(deadline);
    fallback(context.get(), request, response,
             [context, keep, done = std::move(done)](grpc::Status s) { done(s); });
  }

  // One stream. Owned by itself from Begin until its last operation has completed (the
  // StreamCalls may be gone by then); everything on the loop.
  class Stream {
   public:
    static std::shared_ptr<Stream> Begin(GrpcQueue* queue, const Open& open, const Start& fallback,
                                         std::shared_ptr<bool> unimplemented) {
      std::shared_ptr<Stream> s(new Stream(queue, fallback, std::move(unimplemented)));
      if (!queue->Enter(&s->context_)) return nullptr;
      s->self_ = s;
      s->rw_ = open(&s->context_, queue->cq());
      ++s->ops_;
      s->rw_->StartCall(&s->started_op_);
      return s;
    }

    // Whether new calls may go on this stream.
    bool TakesCalls(int64_t now_ns, absl::Duration max_age) const {
      return !finishing_ && !retired_ && now_ns - born_ns_ < absl::ToInt64Nanoseconds(max_age);
    }
    bool ended() const { return ended_; }
    bool has_pending() const { return !pending_.empty(); }

    // Only while TakesCalls().
    void Send(Pending call) {
      writes_.push_back(call.frame);
      pending_.emplace(call.frame->id(), std::move(call));
      if (started_ && !writing_) WriteFront();
    }

    // No new calls; half-close once every call is answered (the server then ends the stream).
    void Retire() {
      retired_ = true;
      MaybeClose();
    }

    void Cancel() { context_.TryCancel(); }

    // Fails the calls whose deadline passed (their answers, if they come, are dropped).
    void Expire(std::chrono::system_clock::time_point now) {
      std::vector<Pending> late;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline <= now) {
          late.push_back(std::move(it->second));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
      if (late.empty()) return;
      MaybeClose();
      for (Pending& p : late) {
        p.done(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"));
      }
    }

   private:
    Stream(GrpcQueue* queue, const Start& fallback, std::shared_ptr<bool> unimplemented)
        : queue_(queue),
          fallback_(fallback),
          unimplemented_(std::move(unimplemented)),
          born_ns_(EventLoop::NowNanos()) {}

    void OnStarted(bool ok) {
      --ops_;
      started_ = true;
      if (!ok) return StartFinish();  // the call is over before it began: learn why
      ReadNext();
      if (!writes_.empty()) {
        WriteFront();
      } else {
        MaybeClose();
      }
    }

    void WriteFront() {
      writing_ = true;
      ++ops_;
      rw_->Write(*writes_.front(), &wrote_op_);
    }

    void OnWrote(bool ok) {
      --ops_;
      writing_ = false;
      writes_.pop_front();
      if (!ok) {  // the stream is ending; the failed read that follows fails what is pending
        writes_.clear();
        return MaybeRelease();
      }
      if (!writes_.empty()) return WriteFront();
      MaybeClose();
    }

    void ReadNext() {
      ++ops_;
      rw_->Read(&in_, &read_op_);
    }

    void OnRead(bool ok) {
      --ops_;
      if (!ok) return StartFinish();  // the stream ended: its status says how
      std::optional<Pending> call;
      auto it = pending_.find(in_.id());
      if (it != pending_.end()) {
        call.emplace(std::move(it->second));
        pending_.erase(it);
      }
      grpc::Status status;
      if (call) {
        if (in_.code() != 0) {
          status = grpc::Status(static_cast<grpc::StatusCode>(in_.code()), in_.message());
        }
        call->response->Swap(in_.mutable_response());
      }
      in_.Clear();
      ReadNext();
      MaybeClose();
      if (call) call->done(std::move(status));
    }

    // Retired, nothing in flight and nothing left to write: half-close (once).
    void MaybeClose() {
      if (!retired_ || closed_ || finishing_ || !started_ || !pending_.empty() || writing_) {
        return;
      }
      closed_ = true;
      writing_ = true;  // WritesDone is the stream's last write
      ++ops_;
      rw_->WritesDone(&closed_op_);
    }

    void OnClosed(bool) {
      --ops_;
      MaybeRelease();
    }

    void StartFinish() {
      if (finishing_) return;
      finishing_ = true;
      ++ops_;
      rw_->Finish(&status_, &finished_op_);
    }

    void OnFinished(bool) {
      --ops_;
      ended_ = true;
      std::unordered_map<uint64_t, Pending> orphans;
      orphans.swap(pending_);
      // Frames not yet sent go; the one being written stays until its write completes.
      if (writing_ && !writes_.empty()) {
        writes_.resize(1);
      } else {
        writes_.clear();
      }
      if (status_.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        // An older server: these calls and all later ones go unary.
        *unimplemented_ = true;
        for (auto& [id, p] : orphans) {
          CallUnary(fallback_, p.deadline, p.frame->mutable_request(), p.response,
                    std::move(p.done), p.frame);
        }
      } else {
        const grpc::Status failure =
            status_.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended") : status_;
        for (auto& [id, p] : orphans) p.done(failure);
      }
      MaybeRelease();
    }

    // Once the stream has ended and no operation of it is in flight, it lets go of itself.
    void MaybeRelease() {
      if (!ended_ || ops_ > 0 || !self_) return;
      queue_->Leave(&context_);
      std::shared_ptr<Stream> keep = std::move(self_);  // may be the last reference
    }

    GrpcQueue* const queue_;
    const Start fallback_;  // a copy: a stream may outlive its StreamCalls
    std::shared_ptr<bool> unimplemented_;
    const int64_t born_ns_;
    grpc::ClientContext context_;
    std::unique_ptr<ReaderWriter> rw_;
    BoundOp<Stream> started_op_{this, &Stream::OnStarted};
    BoundOp<Stream> wrote_op_{this, &Stream::OnWrote};
    BoundOp<Stream> read_op_{this, &Stream::OnRead};
    BoundOp<Stream> closed_op_{this, &Stream::OnClosed};
    BoundOp<Stream> finished_op_{this, &Stream::OnFinished};
    Reply in_;
    grpc::Status status_;
    std::shared_ptr<Stream> self_;
    std::deque<std::shared_ptr<Frame>> writes_;  // front: being written
    std::unordered_map<uint64_t, Pending> pending_;
    int ops_ = 0;  // operations on the queue
    bool started_ = false;
    bool writing_ = false;
    bool retired_ = false;
    bool closed_ = false;     // WritesDone sent
    bool finishing_ = false;  // Finish asked for: the stream is over
    bool ended_ = false;      // Finish completed
  };

  void ArmSweep() {
    if (sweep_timer_ != 0) return;
    sweep_timer_ = queue_->loop()->RunAfter(options_.sweep, [this] {
      sweep_timer_ = 0;
      Sweep();
    });
  }

  void Sweep() {
    const auto now = std::chrono::system_clock::now();
    bool busy = false;
    for (auto& s : slots_) {
      if (!s) continue;
      s->Expire(now);
      busy = busy || s->has_pending();
    }
    for (auto it = retired_.begin(); it != retired_.end();) {
      (*it)->Expire(now);
      if ((*it)->ended()) {
        it = retired_.erase(it);
      } else {
        busy = busy || (*it)->has_pending();
        ++it;
      }
    }
    if (busy || !retired_.empty()) ArmSweep();
  }

  GrpcQueue* const queue_;
  const Open open_;
  const Start fallback_;
  const StreamCallsOptions options_;
  std::shared_ptr<bool> unimplemented_;
  std::vector<std::shared_ptr<Stream>> slots_;
  std::vector<std::shared_ptr<Stream>> retired_;  // draining: no new calls
  size_t next_slot_ = 0;
  uint64_t next_id_ = 1;
  EventLoop::TimerId sweep_timer_ = 0;
};

}  // namespace xc
