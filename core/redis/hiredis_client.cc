#include "core/redis/hiredis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/base/log.h"

namespace xc {
namespace {

timeval DurationToTimeval(absl::Duration d) {
  timeval tv;
  tv.tv_sec = absl::ToInt64Seconds(d);
  tv.tv_usec = absl::ToInt64Microseconds(d - absl::Seconds(tv.tv_sec));
  return tv;
}

absl::Status TransportError(redisContext* ctx) {
  std::string what = ctx ? ctx->errstr : "cannot allocate context";
  if (ctx && ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == ETIMEDOUT)) {
    return absl::DeadlineExceededError(absl::StrCat("redis: timeout: ", what));
  }
  return absl::UnavailableError(absl::StrCat("redis: ", what));
}

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
      std::string msg(r->str, r->len);
      if (msg.rfind("NOSCRIPT", 0) == 0) return absl::FailedPreconditionError(msg);
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

void AppendArgv(redisContext* ctx, const RedisArgv& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data());
}

class HiredisClient final : public RedisClient {
 public:
  HiredisClient(RedisConnectionOptions options, RedisPoolOptions pool)
      : options_(std::move(options)), pool_(pool) {}

  ~HiredisClient() override {
    for (redisContext* c : idle_) redisFree(c);
  }

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override {
    absl::StatusOr<std::vector<RedisReply>> replies = Pipeline({argv});
    if (!replies.ok()) return replies.status();
    return std::move((*replies)[0]);
  }

  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgv>& commands) override {
    absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> each = PipelineEach(commands);
    if (!each.ok()) return each.status();
    std::vector<RedisReply> out;
    out.reserve(each->size());
    for (absl::StatusOr<RedisReply>& r : *each) {
      if (!r.ok()) return r.status();
      out.push_back(*std::move(r));
    }
    return out;
  }

  absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> PipelineEach(
      const std::vector<RedisArgv>& commands) override {
    absl::StatusOr<redisContext*> ctx = Acquire();
    if (!ctx.ok()) return ctx.status();
    for (const RedisArgv& argv : commands) AppendArgv(*ctx, argv);
    std::vector<absl::StatusOr<RedisReply>> out;
    out.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(*ctx, &raw) != REDIS_OK || raw == nullptr) {
        absl::Status s = TransportError(*ctx);
        Discard(*ctx);  // broken: never returned to the pool
        return s;
      }
      redisReply* r = static_cast<redisReply*>(raw);
      out.push_back(Convert(r));
      freeReplyObject(r);
    }
    Release(*ctx);
    return out;
  }

 private:
  absl::StatusOr<redisContext*> Acquire() {
    {
      absl::MutexLock lock(&mu_);
      auto available = [this] { return !idle_.empty() || open_ < pool_.max_connections; };
      if (!mu_.AwaitWithTimeout(absl::Condition(&available), pool_.acquire_timeout)) {
        return absl::DeadlineExceededError("redis: no free connection");
      }
      if (!idle_.empty()) {
        redisContext* c = idle_.back();
        idle_.pop_back();
        return c;
      }
      ++open_;  // reserve a slot, then connect outside the lock
    }
    absl::StatusOr<redisContext*> fresh = Connect();
    if (!fresh.ok()) Discard(nullptr);
    return fresh;
  }

  absl::StatusOr<redisContext*> Connect() {
    timeval tv = DurationToTimeval(options_.connect_timeout);
    redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port, tv);
    if (c == nullptr || c->err) {
      absl::Status s = TransportError(c);
      if (c) redisFree(c);
      return s;
    }
    redisSetTimeout(c, DurationToTimeval(options_.command_timeout));
    if (!options_.password.empty()) {
      RedisArgv auth = {"AUTH"};
      if (!options_.user.empty()) auth.push_back(options_.user);
      auth.push_back(options_.password);
      AppendArgv(c, auth);
      void* raw = nullptr;
      redisReply* r = redisGetReply(c, &raw) == REDIS_OK ? static_cast<redisReply*>(raw) : nullptr;
      bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
      if (r) freeReplyObject(r);
      if (!ok) {
        redisFree(c);
        return absl::PermissionDeniedError("redis: AUTH failed");
      }
    }
    return c;
  }

  void Release(redisContext* c) {
    absl::MutexLock lock(&mu_);
    idle_.push_back(c);
  }

  // A broken connection gives its slot back.
  void Discard(redisContext* c) {
    if (c != nullptr) redisFree(c);
    absl::MutexLock lock(&mu_);
    --open_;
  }

  const RedisConnectionOptions options_;
  const RedisPoolOptions pool_;
  absl::Mutex mu_;
  std::vector<redisContext*> idle_;
  int open_ = 0;  // connections in use or idle
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

std::unique_ptr<RedisClient> NewHiredisClient(RedisConnectionOptions options,
                                              RedisPoolOptions pool) {
  return std::make_unique<HiredisClient>(std::move(options), pool);
}

}  // namespace xc
