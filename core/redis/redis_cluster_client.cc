#include "core/redis/redis_cluster_client.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/log.h"
#include "core/redis/blocking_redis_client.h"

namespace xc {
namespace {

constexpr int kSlots = 16384;

std::atomic<int64_t> moved_count{0};
std::atomic<int64_t> ask_count{0};
std::atomic<int64_t> retry_count{0};

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<uint16_t>(byte) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

// A cluster error reply that tells the client where (or when) to try again.
struct Redirect {
  enum class Kind { kNone, kMoved, kAsk, kRetry };
  Kind kind = Kind::kNone;
  int slot = -1;
  std::string address;
};

Redirect ParseRedirect(const absl::Status& status) {
  Redirect r;
  if (!absl::IsInternal(status)) return r;
  absl::string_view m = status.message();
  absl::ConsumePrefix(&m, "redis: ");
  if (absl::StartsWith(m, "TRYAGAIN") || absl::StartsWith(m, "CLUSTERDOWN")) {
    r.kind = Redirect::Kind::kRetry;
    return r;
  }
  const bool moved = absl::StartsWith(m, "MOVED ");
  if (!moved && !absl::StartsWith(m, "ASK ")) return r;
  std::vector<absl::string_view> parts = absl::StrSplit(m, ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &r.slot) || r.slot < 0 ||
      r.slot >= kSlots) {
    return r;
  }
  r.kind = moved ? Redirect::Kind::kMoved : Redirect::Kind::kAsk;
  r.address = std::string(parts[2]);
  return r;
}

class ClusterClient final : public AsyncRedisClient {
 public:
  ClusterClient(EventLoop* loop, RedisClusterOptions options)
      : loop_(loop), options_(std::move(options)), alive_(std::make_shared<bool>(true)) {
    for (const std::string& seed : options_.seeds) NodeFor(seed, "");
    std::weak_ptr<bool> alive = alive_;
    loop_->Post([this, alive] {
      if (alive.expired()) return;
      Refresh();
      ScheduleRefresh();
    });
  }

  EventLoop* loop() const override { return loop_; }

  void Send(std::vector<RedisArgv> commands, RedisCallback done) override {
    auto op = std::make_shared<Op>();
    const size_t n = commands.size();
    op->commands = std::move(commands);
    op->results.resize(n);
    op->routes.resize(n);
    op->done = std::move(done);
    if (n == 0) return Finish(op);
    if (!first_map_done_) {
      // Until the first CLUSTER SLOTS answer (or the first failure to get one), routing would
      // be a guess that may pick a dead seed: wait for it.
      waiting_for_map_.push_back(std::move(op));
      Refresh();
      return;
    }
    Start(op);
  }

  std::vector<AsyncRedisClient*> Shards() override {
    std::vector<AsyncRedisClient*> out;
    std::set<Node*> seen;
    for (Node* node : slots_) {
      if (node != nullptr && seen.insert(node).second) out.push_back(node->client.get());
    }
    return out;
  }

 private:
  struct Node {
    std::string address;
    std::unique_ptr<AsyncRedisClient> client;
  };
  struct Route {
    Node* node = nullptr;
    bool asking = false;
  };
  // One Send in progress: its commands, where each goes, and what came back so far.
  struct Op {
    std::vector<RedisArgv> commands;
    std::vector<std::optional<absl::StatusOr<RedisReply>>> results;
    std::vector<Route> routes;
    RedisCallback done;
    absl::Status transport;  // first transport failure: fails the whole call
    int round = 0;
    absl::Duration backoff = absl::Milliseconds(5);
    // The round in flight.
    size_t outstanding = 0;
    std::vector<size_t> again;
    bool wait = false;
    bool stale_map = false;
  };

  void Start(const std::shared_ptr<Op>& op) {
    std::vector<size_t> pending(op->commands.size());
    for (size_t i = 0; i < pending.size(); ++i) {
      op->routes[i].node = NodeForCommand(op->commands[i]);
      pending[i] = i;
    }
    Dispatch(op, std::move(pending));
  }

  void FirstMapDone() {
    if (first_map_done_) return;
    first_map_done_ = true;
    std::vector<std::shared_ptr<Op>> waiting;
    waiting.swap(waiting_for_map_);
    for (const std::shared_ptr<Op>& op : waiting) Start(op);
  }

  // Sends the commands at `pending` to their nodes, one pipeline per node.
  void Dispatch(const std::shared_ptr<Op>& op, std::vector<size_t> pending) {
    std::map<Node*, std::vector<size_t>> groups;
    for (size_t i : pending) {
      if (op->routes[i].node == nullptr) {
        op->results[i] = absl::UnavailableError("redis cluster: no node is known for this slot");
        if (op->transport.ok()) op->transport = op->results[i]->status();
        continue;
      }
      groups[op->routes[i].node].push_back(i);
    }
    op->again.clear();
    op->wait = false;
    op->stale_map = false;
    op->outstanding = groups.size();
    if (groups.empty()) return RoundDone(op);
    for (auto& [node, indexes] : groups) {
      std::vector<RedisArgv> batch;
      std::vector<size_t> position;
      batch.reserve(indexes.size());
      for (size_t i : indexes) {
        if (op->routes[i].asking) batch.push_back({"ASKING"});
        position.push_back(batch.size());
        batch.push_back(op->commands[i]);
      }
      Node* target = node;
      node->client->Send(std::move(batch), [this, op, target, indexes = std::move(indexes),
                                            position = std::move(position)](
                                               absl::StatusOr<RedisResults> replies) mutable {
        Collect(op, target, indexes, position, std::move(replies));
        if (--op->outstanding == 0) RoundDone(op);
      });
    }
  }

  void Collect(const std::shared_ptr<Op>& op, Node* node, const std::vector<size_t>& indexes,
               const std::vector<size_t>& position, absl::StatusOr<RedisResults> replies) {
    if (!replies.ok()) {
      for (size_t i : indexes) op->results[i] = replies.status();
      if (op->transport.ok()) op->transport = replies.status();
      op->stale_map = true;  // the master may have failed over
      return;
    }
    for (size_t k = 0; k < indexes.size(); ++k) {
      const size_t i = indexes[k];
      absl::StatusOr<RedisReply>& reply = (*replies)[position[k]];
      Redirect redirect = ParseRedirect(reply.status());
      switch (redirect.kind) {
        case Redirect::Kind::kNone:
          op->results[i] = std::move(reply);
          break;
        case Redirect::Kind::kMoved:
          moved_count.fetch_add(1, std::memory_order_relaxed);
          op->routes[i] = {NodeFor(redirect.address, node->address), false};
          slots_[redirect.slot] = op->routes[i].node;
          op->stale_map = true;
          op->again.push_back(i);
          break;
        case Redirect::Kind::kAsk:
          ask_count.fetch_add(1, std::memory_order_relaxed);
          op->routes[i] = {NodeFor(redirect.address, node->address), true};
          op->again.push_back(i);
          break;
        case Redirect::Kind::kRetry:
          retry_count.fetch_add(1, std::memory_order_relaxed);
          op->routes[i] = {nullptr, false};  // routed again after the wait
          op->wait = true;
          op->again.push_back(i);
          break;
      }
    }
  }

  void RoundDone(const std::shared_ptr<Op>& op) {
    if (op->stale_map) MaybeRefresh();
    std::vector<size_t> again = std::move(op->again);
    op->again.clear();
    if (again.empty()) return Finish(op);
    if (++op->round > options_.max_redirects) {
      for (size_t i : again) op->results[i] = absl::UnavailableError("redis cluster: too many redirects");
      return Finish(op);
    }
    if (!op->wait) return Dispatch(op, std::move(again));
    const absl::Duration delay = op->backoff;
    op->backoff = std::min(op->backoff * 2, options_.max_backoff);
    std::weak_ptr<bool> alive = alive_;
    loop_->RunAfter(delay, [this, alive, op, again = std::move(again)]() mutable {
      if (alive.expired()) return;
      for (size_t i : again) {
        if (op->routes[i].node == nullptr) op->routes[i].node = NodeForCommand(op->commands[i]);
      }
      Dispatch(op, std::move(again));
    });
  }

  void Finish(const std::shared_ptr<Op>& op) {
    if (!op->transport.ok()) return op->done(op->transport);
    RedisResults out;
    out.reserve(op->results.size());
    for (auto& r : op->results) out.push_back(std::move(*r));
    op->done(std::move(out));
  }

  Node* NodeFor(const std::string& address, const std::string& asked) {
    std::string addr = address;
    // A node that does not know its own host name answers ":port"; it is the asked one's host.
    if (absl::StartsWith(addr, ":") && !asked.empty()) {
      addr = asked.substr(0, asked.rfind(':')) + addr;
    }
    std::unique_ptr<Node>& node = nodes_[addr];
    if (node == nullptr) {
      node = std::make_unique<Node>();
      node->address = addr;
      RedisConnectionOptions conn = options_.connection;
      absl::StatusOr<RedisConnectionOptions> parsed = ParseRedisAddress(addr);
      if (parsed.ok()) {
        conn.host = parsed->host;
        conn.port = parsed->port;
      }
      node->client = NewAsyncRedisClient(loop_, conn);
    }
    return node.get();
  }

  Node* AnyNode() {
    for (Node* node : slots_) {
      if (node != nullptr) return node;
    }
    return nodes_.empty() ? nullptr : nodes_.begin()->second.get();
  }

  Node* NodeForCommand(const RedisArgv& argv) {
    std::optional<absl::string_view> key = RedisCommandKey(argv);
    if (!key.has_value()) return AnyNode();
    const uint16_t slot = RedisClusterSlot(*key);
    if (slots_[slot] != nullptr) return slots_[slot];
    MaybeRefresh();
    return AnyNode();  // it answers MOVED if the slot is elsewhere
  }

  // At most one refresh at a time and not more often than every 100 ms; callers go on with
  // the map they have.
  void MaybeRefresh() {
    if (refreshing_) return;
    if (EventLoop::NowNanos() - last_refresh_ns_ < 100 * 1000 * 1000) return;
    Refresh();
  }

  void Refresh() {
    if (refreshing_) return;
    refreshing_ = true;
    last_refresh_ns_ = EventLoop::NowNanos();
    std::vector<Node*> candidates;
    std::set<Node*> seen;
    for (Node* node : slots_) {
      if (node != nullptr && seen.insert(node).second) candidates.push_back(node);
    }
    for (auto& [address, node] : nodes_) {
      if (seen.insert(node.get()).second) candidates.push_back(node.get());
    }
    AskForSlots(std::move(candidates), 0);
  }

  // Asks candidates in turn until one answers CLUSTER SLOTS with a usable map.
  void AskForSlots(std::vector<Node*> candidates, size_t next) {
    if (next >= candidates.size()) {
      refreshing_ = false;
      XC_LOG(WARNING) << "redis cluster: no node answered CLUSTER SLOTS (will keep trying)";
      FirstMapDone();
      return;
    }
    Node* node = candidates[next];
    std::weak_ptr<bool> alive = alive_;
    node->client->Send({{"CLUSTER", "SLOTS"}}, [this, alive, node, next,
                                                candidates = std::move(candidates)](
                                                   absl::StatusOr<RedisResults> r) mutable {
      if (alive.expired()) return;
      if (r.ok() && (*r)[0].ok() && ApplySlots(node, *(*r)[0])) {
        refreshing_ = false;
        FirstMapDone();
        return;
      }
      AskForSlots(std::move(candidates), next + 1);
    });
  }

  bool ApplySlots(Node* asked, const RedisReply& ranges) {
    std::array<Node*, kSlots> fresh{};
    int covered = 0;
    const std::string asked_host = asked->address.substr(0, asked->address.rfind(':'));
    for (const RedisReply& range : ranges.elements) {
      if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
      const int64_t start = range.elements[0].integer;
      const int64_t end = range.elements[1].integer;
      const RedisReply& master = range.elements[2];
      std::string host = master.elements[0].str;
      if (host.empty() || host == "?") host = asked_host;
      Node* owner = NodeFor(absl::StrCat(host, ":", master.elements[1].integer), "");
      for (int64_t s = std::max<int64_t>(start, 0); s <= end && s < kSlots; ++s) {
        fresh[s] = owner;
        ++covered;
      }
    }
    if (covered == 0) return false;
    slots_ = fresh;
    return true;
  }

  void ScheduleRefresh() {
    std::weak_ptr<bool> alive = alive_;
    loop_->RunAfter(options_.refresh_interval, [this, alive] {
      if (alive.expired()) return;
      Refresh();
      ScheduleRefresh();
    });
  }

  EventLoop* const loop_;
  const RedisClusterOptions options_;
  std::shared_ptr<bool> alive_;
  std::array<Node*, kSlots> slots_{};
  std::map<std::string, std::unique_ptr<Node>> nodes_;  // never removed: pointers stay valid
  bool refreshing_ = false;
  int64_t last_refresh_ns_ = 0;
  bool first_map_done_ = false;
  std::vector<std::shared_ptr<Op>> waiting_for_map_;
};

}  // namespace

uint16_t RedisClusterSlot(absl::string_view key) {
  size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kSlots - 1);
}

std::optional<absl::string_view> RedisCommandKey(const RedisArgv& argv) {
  if (argv.size() < 2) return std::nullopt;
  std::string name = absl::AsciiStrToUpper(argv[0]);
  if (name == "EVAL" || name == "EVALSHA" || name == "EVAL_RO" || name == "EVALSHA_RO" ||
      name == "FCALL" || name == "FCALL_RO") {
    int numkeys = 0;
    if (argv.size() < 4 || !absl::SimpleAtoi(argv[2], &numkeys) || numkeys < 1) {
      return std::nullopt;
    }
    return absl::string_view(argv[3]);
  }
  static const auto* const kKeyless = new std::set<std::string>{
      "PING", "ECHO", "INFO", "SCAN", "DBSIZE", "FLUSHALL", "FLUSHDB", "CLUSTER", "ASKING",
      "READONLY", "READWRITE", "SCRIPT", "FUNCTION", "ACL", "CONFIG", "TIME", "KEYS",
      "RANDOMKEY", "AUTH", "HELLO", "CLIENT", "WAIT", "SELECT", "COMMAND", "LASTSAVE",
      "BGREWRITEAOF", "BGSAVE", "SAVE", "MEMORY", "SLOWLOG", "LATENCY", "DEBUG", "MONITOR"};
  if (kKeyless->count(name) > 0) return std::nullopt;
  return absl::string_view(argv[1]);
}

RedisClusterRedirects RedisClusterRedirectCounts() {
  RedisClusterRedirects r;
  r.moved = moved_count.load(std::memory_order_relaxed);
  r.ask = ask_count.load(std::memory_order_relaxed);
  r.retry = retry_count.load(std::memory_order_relaxed);
  return r;
}

std::unique_ptr<AsyncRedisClient> NewAsyncRedisClusterClient(EventLoop* loop,
                                                             RedisClusterOptions options) {
  return std::make_unique<ClusterClient>(loop, std::move(options));
}

absl::StatusOr<std::unique_ptr<AsyncRedisClient>> ConnectAsyncRedis(
    EventLoop* loop, absl::string_view address, RedisConnectionOptions base) {
  if (absl::ConsumePrefix(&address, "cluster://")) {
    RedisClusterOptions options;
    options.connection = base;
    for (absl::string_view seed : absl::StrSplit(address, ',', absl::SkipEmpty())) {
      absl::StatusOr<RedisConnectionOptions> parsed = ParseRedisAddress(seed);
      if (!parsed.ok()) return parsed.status();
      options.seeds.push_back(absl::StrCat(parsed->host, ":", parsed->port));
    }
    if (options.seeds.empty()) {
      return absl::InvalidArgumentError("cluster:// needs at least one host:port");
    }
    return NewAsyncRedisClusterClient(loop, std::move(options));
  }
  absl::StatusOr<RedisConnectionOptions> parsed = ParseRedisAddress(address);
  if (!parsed.ok()) return parsed.status();
  base.host = parsed->host;
  base.port = parsed->port;
  return NewAsyncRedisClient(loop, base);
}

absl::StatusOr<std::unique_ptr<RedisClient>> ConnectRedis(absl::string_view address,
                                                          RedisConnectionOptions base) {
  auto loop = std::make_unique<EventLoop>();
  absl::StatusOr<std::unique_ptr<AsyncRedisClient>> async =
      ConnectAsyncRedis(loop.get(), address, std::move(base));
  if (!async.ok()) return async.status();
  return NewBlockingRedisClientWithLoop(std::move(loop), *std::move(async));
}

}  // namespace xc
