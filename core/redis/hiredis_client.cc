#include "core/redis/hiredis_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/base/log.h"

namespace xc {
namespace {

absl::StatusOr<RedisReply> Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_NIL:
      return out;
    case REDIS_REPLY_INTEGER:
      return RedisReply::Integer(r->integer);
    case REDIS_REPLY_STRING:
      return RedisReply::String(std::string(r->str, r->len));
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      return out;
    case REDIS_REPLY_ERROR: {
      absl::string_view msg(r->str, r->len);
      if (absl::StartsWith(msg, "NOSCRIPT")) return absl::FailedPreconditionError(msg);
      // A server still loading its data set (just restarted) will answer soon: transient.
      if (absl::StartsWith(msg, "LOADING")) return absl::UnavailableError(absl::StrCat("redis: ", msg));
      return absl::InternalError(absl::StrCat("redis: ", msg));
    }
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        absl::StatusOr<RedisReply> e = Convert(r->element[i]);
        if (!e.ok()) return e.status();
        out.elements.push_back(*std::move(e));
      }
      return out;
    default:
      return absl::InternalError("redis: unknown reply type");
  }
}

// RESP: *<argc>\r\n then $<len>\r\n<bytes>\r\n per argument (binary-safe).
void Encode(const RedisArgv& argv, std::string* out) {
  absl::StrAppend(out, "*", argv.size(), "\r\n");
  for (const std::string& a : argv) {
    absl::StrAppend(out, "$", a.size(), "\r\n");
    out->append(a);
    out->append("\r\n");
  }
}

class RedisConnection final : public AsyncRedisClient {
 public:
  RedisConnection(EventLoop* loop, RedisConnectionOptions options)
      : loop_(loop), options_(std::move(options)), alive_(std::make_shared<bool>(true)) {}

  ~RedisConnection() override {
    // Calls still in flight are dropped, not answered: whoever waits on them is going away
    // with this client (process shutdown).
    CloseSocket();
  }

  EventLoop* loop() const override { return loop_; }

  void Send(std::vector<RedisArgv> commands, RedisCallback done) override {
    if (commands.empty()) {
      done(RedisResults{});
      return;
    }
    if (state_ == State::kDisconnected) {
      if (EventLoop::NowNanos() < backoff_until_ns_) {
        done(absl::UnavailableError(absl::StrCat("redis: ", Address(),
                                                 " unreachable (reconnecting with backoff)")));
        return;
      }
      Connect();
      if (state_ == State::kDisconnected) {  // failed at once
        done(absl::UnavailableError(absl::StrCat("redis: cannot connect to ", Address(), ": ",
                                                 last_error_)));
        return;
      }
    }
    for (const RedisArgv& argv : commands) Encode(argv, &out_);
    Call& call = calls_.emplace_back();
    call.expected = commands.size();
    call.results.reserve(commands.size());
    call.done = std::move(done);
    call.enqueued_ns = EventLoop::NowNanos();
    ArmTimeout();
    if (state_ == State::kConnected) ScheduleFlush();
  }

 private:
  enum class State { kDisconnected, kConnecting, kConnected };

  struct Call {
    size_t expected = 0;
    RedisResults results;
    RedisCallback done;  // empty: the connection's own AUTH
    int64_t enqueued_ns = 0;
  };

  std::string Address() const { return absl::StrCat(options_.host, ":", options_.port); }

  void Connect() {
    last_error_.clear();
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(options_.port);
    if (int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      last_error_ = gai_strerror(rc);
      StartBackoff();
      return;
    }
    fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd_ < 0 ? -1 : connect(fd_, res->ai_addr, res->ai_addrlen);
    const int err = errno;
    freeaddrinfo(res);
    if (fd_ < 0 || (rc != 0 && err != EINPROGRESS)) {
      last_error_ = std::strerror(err);
      CloseSocket();
      StartBackoff();
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    reader_ = redisReaderCreate();
    state_ = State::kConnecting;
    std::weak_ptr<bool> alive = alive_;
    loop_->Watch(fd_, EPOLLOUT | EPOLLIN | EPOLLRDHUP, [this, alive](uint32_t events) {
      if (!alive.expired()) OnEvents(events);
    });
    want_write_ = true;
    connect_timer_ = loop_->RunAfter(options_.connect_timeout, [this, alive] {
      if (alive.expired()) return;
      connect_timer_ = 0;
      if (state_ == State::kConnecting) {
        last_error_ = "connect timed out";
        Fail(absl::UnavailableError(absl::StrCat("redis: connect to ", Address(), " timed out")),
             /*connect_failure=*/true);
      }
    });
    if (!options_.password.empty()) {
      RedisArgv auth = {"AUTH"};
      if (!options_.user.empty()) auth.push_back(options_.user);
      auth.push_back(options_.password);
      Encode(auth, &out_);
      Call& call = calls_.emplace_back();
      call.expected = 1;
      call.enqueued_ns = EventLoop::NowNanos();
    }
  }

  void OnEvents(uint32_t events) {
    if (state_ == State::kConnecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last_error_ = std::strerror(err);
        return Fail(absl::UnavailableError(absl::StrCat("redis: cannot connect to ", Address(),
                                                        ": ", last_error_)),
                    /*connect_failure=*/true);
      }
      state_ = State::kConnected;
      if (connect_timer_ != 0) loop_->Cancel(connect_timer_);
      connect_timer_ = 0;
      Flush();
      if (state_ != State::kConnected) return;
    }
    if (events & EPOLLOUT) {
      Flush();
      if (state_ != State::kConnected) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadSome();
  }

  void ScheduleFlush() {
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    std::weak_ptr<bool> alive = alive_;
    loop_->Defer([this, alive] {
      if (alive.expired()) return;
      flush_scheduled_ = false;
      if (state_ == State::kConnected) Flush();
    });
  }

  void Flush() {
    while (sent_ < out_.size()) {
      ssize_t n = send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
      if (n > 0) {
        sent_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return Fail(absl::UnavailableError(absl::StrCat("redis: write to ", Address(), ": ",
                                                      std::strerror(errno))),
                  false);
    }
    if (sent_ == out_.size()) {
      out_.clear();
      sent_ = 0;
    } else if (sent_ > (1 << 20)) {
      out_.erase(0, sent_);
      sent_ = 0;
    }
    const bool want = sent_ < out_.size();
    if (want != want_write_) {
      want_write_ = want;
      loop_->Modify(fd_, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u));
    }
  }

  void ReadSome() {
    char buf[65536];
    while (state_ == State::kConnected) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        if (redisReaderFeed(reader_, buf, static_cast<size_t>(n)) != REDIS_OK) {
          return Fail(absl::InternalError("redis: protocol error"), false);
        }
        if (!TakeReplies()) return;
        if (static_cast<size_t>(n) < sizeof(buf)) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return Fail(absl::UnavailableError(absl::StrCat("redis: connection to ", Address(),
                                                      n == 0 ? " closed" : " broken")),
                  false);
    }
  }

  // Hands out every complete reply; false when the connection went away meanwhile.
  bool TakeReplies() {
    std::weak_ptr<bool> alive = alive_;
    while (true) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        Fail(absl::InternalError("redis: protocol error"), false);
        return false;
      }
      if (raw == nullptr) return true;
      redisReply* reply = static_cast<redisReply*>(raw);
      if (calls_.empty()) {
        freeReplyObject(reply);
        Fail(absl::InternalError("redis: reply without a request"), false);
        return false;
      }
      Call& call = calls_.front();
      call.results.push_back(Convert(reply));
      freeReplyObject(reply);
      if (call.results.size() < call.expected) continue;
      Call done = std::move(call);
      calls_.pop_front();
      if (!done.done) {  // our AUTH
        if (!done.results[0].ok()) {
          last_error_ = "AUTH failed";
          Fail(absl::PermissionDeniedError(absl::StrCat("redis: AUTH failed: ",
                                                        done.results[0].status().message())),
               /*connect_failure=*/true);
          return false;
        }
        backoff_ = absl::ZeroDuration();
        continue;
      }
      backoff_ = absl::ZeroDuration();
      done.done(std::move(done.results));
      if (alive.expired() || state_ != State::kConnected) return false;
    }
  }

  // While calls wait, a timer checks that the oldest one is answered in time.
  void ArmTimeout() {
    if (timeout_timer_ != 0) return;
    std::weak_ptr<bool> alive = alive_;
    timeout_timer_ = loop_->RunAfter(options_.command_timeout / 4, [this, alive] {
      if (alive.expired()) return;
      timeout_timer_ = 0;
      if (calls_.empty()) return;
      const int64_t age = EventLoop::NowNanos() - calls_.front().enqueued_ns;
      if (age > absl::ToInt64Nanoseconds(options_.command_timeout)) {
        return Fail(absl::DeadlineExceededError(
                        absl::StrCat("redis: timeout: no reply from ", Address(), " in ",
                                     absl::FormatDuration(options_.command_timeout))),
                    false);
      }
      ArmTimeout();
    });
  }

  void StartBackoff() {
    backoff_ = backoff_ == absl::ZeroDuration() ? options_.min_backoff
                                                : std::min(backoff_ * 2, options_.max_backoff);
    backoff_until_ns_ = EventLoop::NowNanos() + absl::ToInt64Nanoseconds(backoff_);
  }

  void CloseSocket() {
    if (fd_ >= 0) {
      loop_->Unwatch(fd_);
      close(fd_);
      fd_ = -1;
    }
    if (reader_ != nullptr) redisReaderFree(reader_);
    reader_ = nullptr;
    if (connect_timer_ != 0) loop_->Cancel(connect_timer_);
    connect_timer_ = 0;
    if (timeout_timer_ != 0) loop_->Cancel(timeout_timer_);
    timeout_timer_ = 0;
    out_.clear();
    sent_ = 0;
    want_write_ = false;
    state_ = State::kDisconnected;
  }

  // Everything in flight fails with `status`; the next call reconnects (after a backoff when
  // connecting failed).
  void Fail(absl::Status status, bool connect_failure) {
    CloseSocket();
    if (connect_failure) StartBackoff();
    std::deque<Call> failed;
    failed.swap(calls_);
    std::weak_ptr<bool> alive = alive_;
    for (Call& call : failed) {
      if (!call.done) continue;
      call.done(status);
      if (alive.expired()) return;
    }
  }

  EventLoop* const loop_;
  const RedisConnectionOptions options_;
  std::shared_ptr<bool> alive_;  // callbacks scheduled on the loop check it
  State state_ = State::kDisconnected;
  int fd_ = -1;
  redisReader* reader_ = nullptr;
  std::string out_;
  size_t sent_ = 0;
  bool want_write_ = false;
  bool flush_scheduled_ = false;
  std::deque<Call> calls_;
  EventLoop::TimerId connect_timer_ = 0;
  EventLoop::TimerId timeout_timer_ = 0;
  absl::Duration backoff_ = absl::ZeroDuration();
  int64_t backoff_until_ns_ = 0;
  std::string last_error_;
};

}  // namespace

absl::StatusOr<RedisConnectionOptions> ParseRedisAddress(absl::string_view address) {
  RedisConnectionOptions o;
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) {
    o.host = std::string(address);
    return o;
  }
  o.host = std::string(address.substr(0, colon));
  if (!absl::SimpleAtoi(address.substr(colon + 1), &o.port) || o.port <= 0 || o.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad Redis address '", address, "'"));
  }
  return o;
}

std::unique_ptr<AsyncRedisClient> NewAsyncRedisClient(EventLoop* loop,
                                                      RedisConnectionOptions options) {
  return std::make_unique<RedisConnection>(loop, std::move(options));
}

}  // namespace xc
