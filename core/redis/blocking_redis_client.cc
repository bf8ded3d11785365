#include "core/redis/blocking_redis_client.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/base/log.h"

namespace xc {
namespace {

class BlockingRedisClient : public RedisClient {
 public:
  explicit BlockingRedisClient(AsyncRedisClient* async) : async_(async) {}

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override {
    absl::StatusOr<RedisResults> each = PipelineEach({argv});
    if (!each.ok()) return each.status();
    return std::move((*each)[0]);
  }

  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgv>& commands) override {
    absl::StatusOr<RedisResults> each = PipelineEach(commands);
    if (!each.ok()) return each.status();
    std::vector<RedisReply> out;
    out.reserve(each->size());
    for (absl::StatusOr<RedisReply>& r : *each) {
      if (!r.ok()) return r.status();
      out.push_back(*std::move(r));
    }
    return out;
  }

  absl::StatusOr<RedisResults> PipelineEach(const std::vector<RedisArgv>& commands) override {
    EventLoop* loop = async_->loop();
    XC_CHECK(!loop->InLoopThread()) << "blocking Redis call on its own loop thread";
    // std::mutex (pthread): safe to destroy right after the notifying thread unlocks it.
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    absl::StatusOr<RedisResults> result;
    loop->Post([&, copy = commands]() mutable {
      async_->Send(std::move(copy), [&](absl::StatusOr<RedisResults> r) {
        std::lock_guard<std::mutex> lock(mu);
        result = std::move(r);
        done = true;
        cv.notify_all();
      });
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    return result;
  }

  std::vector<RedisClient*> Shards() override {
    EventLoop* loop = async_->loop();
    XC_CHECK(!loop->InLoopThread()) << "blocking Redis call on its own loop thread";
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<AsyncRedisClient*> shards;
    loop->Post([&] {
      std::vector<AsyncRedisClient*> s = async_->Shards();
      std::lock_guard<std::mutex> lock(mu);
      shards = std::move(s);
      done = true;
      cv.notify_all();
    });
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done; });
    }
    std::vector<RedisClient*> out;
    absl::MutexLock lock(&shards_mu_);
    for (AsyncRedisClient* shard : shards) {
      if (shard == async_) {
        out.push_back(this);
        continue;
      }
      std::unique_ptr<RedisClient>& face = shard_faces_[shard];
      if (face == nullptr) face = std::make_unique<BlockingRedisClient>(shard);
      out.push_back(face.get());
    }
    return out;
  }

 private:
  AsyncRedisClient* async_;
  absl::Mutex shards_mu_;
  std::map<AsyncRedisClient*, std::unique_ptr<RedisClient>> shard_faces_;
};

class LoopOwningRedisClient final : public BlockingRedisClient {
 public:
  LoopOwningRedisClient(std::unique_ptr<EventLoop> loop, std::unique_ptr<AsyncRedisClient> async)
      : BlockingRedisClient(async.get()), loop_(std::move(loop)), async_(std::move(async)) {
    thread_ = std::thread([this] { loop_->Run(); });
  }
  ~LoopOwningRedisClient() override {
    // The client goes on the loop thread (its sockets and timers are the loop's), then the loop.
    loop_->Post([this] { async_.reset(); });
    loop_->Stop();
    thread_.join();
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<AsyncRedisClient> async_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<RedisClient> NewBlockingRedisClient(AsyncRedisClient* async) {
  return std::make_unique<BlockingRedisClient>(async);
}

std::unique_ptr<RedisClient> NewBlockingRedisClientWithLoop(std::unique_ptr<EventLoop> loop,
                                                            std::unique_ptr<AsyncRedisClient> async) {
  return std::make_unique<LoopOwningRedisClient>(std::move(loop), std::move(async));
}

}  // namespace xc
