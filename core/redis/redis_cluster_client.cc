#include "core/redis/redis_cluster_client.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/base/log.h"

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

// One master (or a node we were sent to): a connection pool plus a reconnect backoff.
class Node {
 public:
  Node(std::string address, const RedisClusterOptions& options) : address_(std::move(address)) {
    RedisConnectionOptions conn = options.connection;
    absl::StatusOr<RedisConnectionOptions> parsed = ParseRedisAddress(address_);
    if (parsed.ok()) {
      conn.host = parsed->host;
      conn.port = parsed->port;
    }
    client_ = NewHiredisClient(conn, options.pool);
    max_backoff_ = options.max_backoff;
  }

  const std::string& address() const { return address_; }
  RedisClient* client() { return client_.get(); }

  absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> Run(
      const std::vector<RedisArgv>& commands) {
    {
      absl::MutexLock lock(&mu_);
      if (absl::Now() < down_until_) {
        return absl::UnavailableError(
            absl::StrCat("redis: node ", address_, " unreachable (reconnecting with backoff)"));
      }
    }
    absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> r = client_->PipelineEach(commands);
    absl::MutexLock lock(&mu_);
    if (absl::IsUnavailable(r.status())) {
      backoff_ = backoff_ == absl::ZeroDuration() ? absl::Milliseconds(20)
                                                  : std::min(backoff_ * 2, max_backoff_);
      down_until_ = absl::Now() + backoff_;
    } else if (r.ok()) {
      backoff_ = absl::ZeroDuration();
    }
    return r;
  }

 private:
  const std::string address_;
  std::unique_ptr<RedisClient> client_;
  absl::Duration max_backoff_;
  absl::Mutex mu_;
  absl::Time down_until_ = absl::InfinitePast();
  absl::Duration backoff_ = absl::ZeroDuration();
};

class ClusterClient final : public RedisClient {
 public:
  explicit ClusterClient(RedisClusterOptions options) : options_(std::move(options)) {
    for (const std::string& seed : options_.seeds) NodeFor(seed, "");
    absl::Status s = Refresh();
    if (!s.ok()) XC_LOG(WARNING) << "redis cluster: " << s << " (will keep trying)";
    refresher_ = std::thread([this] { RefreshLoop(); });
  }

  ~ClusterClient() override {
    {
      absl::MutexLock lock(&stop_mu_);
      stop_ = true;
    }
    refresher_.join();
  }

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override {
    absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> each = PipelineEach({argv});
    if (!each.ok()) return each.status();
    return std::move((*each)[0]);
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
    struct Route {
      Node* node = nullptr;
      bool asking = false;
    };
    const size_t n = commands.size();
    std::vector<std::optional<absl::StatusOr<RedisReply>>> results(n);
    std::vector<Route> routes(n);
    std::vector<size_t> pending;
    pending.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      routes[i].node = NodeForCommand(commands[i]);
      pending.push_back(i);
    }
    absl::Status transport;  // first transport failure: fails the whole call
    absl::Duration backoff = absl::Milliseconds(5);
    for (int round = 0; !pending.empty() && round <= options_.max_redirects; ++round) {
      std::map<Node*, std::vector<size_t>> groups;
      for (size_t i : pending) {
        if (routes[i].node == nullptr) {
          results[i] = absl::UnavailableError("redis cluster: no node is known for this slot");
          if (transport.ok()) transport = results[i]->status();
          continue;
        }
        groups[routes[i].node].push_back(i);
      }
      std::vector<size_t> again;
      bool wait = false;
      bool stale_map = false;
      for (auto& [node, indexes] : groups) {
        std::vector<RedisArgv> batch;
        std::vector<size_t> position;
        for (size_t i : indexes) {
          if (routes[i].asking) batch.push_back({"ASKING"});
          position.push_back(batch.size());
          batch.push_back(commands[i]);
        }
        absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> replies = node->Run(batch);
        if (!replies.ok()) {
          for (size_t i : indexes) results[i] = replies.status();
          if (transport.ok()) transport = replies.status();
          stale_map = true;  // the master may have failed over
          continue;
        }
        for (size_t k = 0; k < indexes.size(); ++k) {
          const size_t i = indexes[k];
          absl::StatusOr<RedisReply>& reply = (*replies)[position[k]];
          Redirect redirect = ParseRedirect(reply.status());
          switch (redirect.kind) {
            case Redirect::Kind::kNone:
              results[i] = std::move(reply);
              break;
            case Redirect::Kind::kMoved:
              moved_count.fetch_add(1, std::memory_order_relaxed);
              routes[i] = {NodeFor(redirect.address, node->address()), false};
              SetSlot(redirect.slot, routes[i].node);
              stale_map = true;
              again.push_back(i);
              break;
            case Redirect::Kind::kAsk:
              ask_count.fetch_add(1, std::memory_order_relaxed);
              routes[i] = {NodeFor(redirect.address, node->address()), true};
              again.push_back(i);
              break;
            case Redirect::Kind::kRetry:
              retry_count.fetch_add(1, std::memory_order_relaxed);
              routes[i] = {NodeForCommand(commands[i]), false};
              wait = true;
              again.push_back(i);
              break;
          }
        }
      }
      if (stale_map) MaybeRefresh();
      if (wait) {
        absl::SleepFor(backoff);
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      pending = std::move(again);
    }
    for (size_t i : pending) {
      results[i] = absl::UnavailableError("redis cluster: too many redirects");
    }
    if (!transport.ok()) return transport;
    std::vector<absl::StatusOr<RedisReply>> out;
    out.reserve(n);
    for (auto& r : results) out.push_back(std::move(*r));
    return out;
  }

  std::vector<RedisClient*> Shards() override {
    absl::ReaderMutexLock lock(&mu_);
    std::vector<RedisClient*> out;
    std::set<Node*> seen;
    for (Node* node : slots_) {
      if (node != nullptr && seen.insert(node).second) out.push_back(node->client());
    }
    return out;
  }

 private:
  Node* NodeFor(const std::string& address, const std::string& asked) {
    std::string addr = address;
    // A node that does not know its own host name answers ":port"; it is the asked one's host.
    if (absl::StartsWith(addr, ":") && !asked.empty()) {
      addr = asked.substr(0, asked.rfind(':')) + addr;
    }
    absl::MutexLock lock(&mu_);
    std::unique_ptr<Node>& node = nodes_[addr];
    if (node == nullptr) node = std::make_unique<Node>(addr, options_);
    return node.get();
  }

  void SetSlot(int slot, Node* node) {
    absl::MutexLock lock(&mu_);
    slots_[slot] = node;
  }

  Node* AnyNode() {
    absl::ReaderMutexLock lock(&mu_);
    for (Node* node : slots_) {
      if (node != nullptr) return node;
    }
    return nodes_.empty() ? nullptr : nodes_.begin()->second.get();
  }

  Node* NodeForCommand(const RedisArgv& argv) {
    std::optional<absl::string_view> key = RedisCommandKey(argv);
    if (!key.has_value()) return AnyNode();
    const uint16_t slot = RedisClusterSlot(*key);
    {
      absl::ReaderMutexLock lock(&mu_);
      if (slots_[slot] != nullptr) return slots_[slot];
    }
    MaybeRefresh();
    {
      absl::ReaderMutexLock lock(&mu_);
      if (slots_[slot] != nullptr) return slots_[slot];
    }
    return AnyNode();  // it answers MOVED if the slot is elsewhere
  }

  // At most one refresh at a time and not more often than every 100 ms; callers that find one
  // running go on with the map they have.
  void MaybeRefresh() {
    if (!refresh_mu_.TryLock()) return;
    if (absl::Now() - last_refresh_ > absl::Milliseconds(100)) (void)RefreshLocked();
    refresh_mu_.Unlock();
  }

  absl::Status Refresh() {
    absl::MutexLock lock(&refresh_mu_);
    return RefreshLocked();
  }

  absl::Status RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_) {
    last_refresh_ = absl::Now();
    std::vector<Node*> candidates;
    {
      absl::ReaderMutexLock lock(&mu_);
      std::set<Node*> seen;
      for (Node* node : slots_) {
        if (node != nullptr && seen.insert(node).second) candidates.push_back(node);
      }
      for (auto& [address, node] : nodes_) {
        if (seen.insert(node.get()).second) candidates.push_back(node.get());
      }
    }
    absl::Status last = absl::UnavailableError("redis cluster: no node to ask for slots");
    for (Node* node : candidates) {
      absl::StatusOr<std::vector<absl::StatusOr<RedisReply>>> r =
          node->Run({{"CLUSTER", "SLOTS"}});
      if (!r.ok() || !(*r)[0].ok()) {
        last = r.ok() ? (*r)[0].status() : r.status();
        continue;
      }
      const RedisReply& ranges = *(*r)[0];
      std::array<Node*, kSlots> fresh{};
      int covered = 0;
      for (const RedisReply& range : ranges.elements) {
        if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
        const int64_t start = range.elements[0].integer;
        const int64_t end = range.elements[1].integer;
        const RedisReply& master = range.elements[2];
        std::string host = master.elements[0].str;
        const std::string asked_host = node->address().substr(0, node->address().rfind(':'));
        if (host.empty() || host == "?") host = asked_host;
        Node* owner = NodeFor(absl::StrCat(host, ":", master.elements[1].integer), "");
        for (int64_t s = std::max<int64_t>(start, 0); s <= end && s < kSlots; ++s) {
          fresh[s] = owner;
          ++covered;
        }
      }
      if (covered == 0) {
        last = absl::UnavailableError("redis cluster: CLUSTER SLOTS named no slot");
        continue;
      }
      absl::MutexLock lock(&mu_);
      slots_ = fresh;
      return absl::OkStatus();
    }
    return last;
  }

  void RefreshLoop() {
    absl::MutexLock lock(&stop_mu_);
    while (!stop_) {
      if (stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.refresh_interval)) break;
      stop_mu_.Unlock();
      absl::Status s = Refresh();
      if (!s.ok()) XC_LOG(WARNING) << "redis cluster: slot refresh: " << s;
      stop_mu_.Lock();
    }
  }

  const RedisClusterOptions options_;
  absl::Mutex mu_;  // slots_ and nodes_ (nodes are never removed: pointers stay valid)
  std::array<Node*, kSlots> slots_ ABSL_GUARDED_BY(mu_){};
  std::map<std::string, std::unique_ptr<Node>> nodes_ ABSL_GUARDED_BY(mu_);
  absl::Mutex refresh_mu_;
  absl::Time last_refresh_ ABSL_GUARDED_BY(refresh_mu_) = absl::InfinitePast();
  absl::Mutex stop_mu_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread refresher_;
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

std::unique_ptr<RedisClient> NewRedisClusterClient(RedisClusterOptions options) {
  return std::make_unique<ClusterClient>(std::move(options));
}

absl::StatusOr<std::unique_ptr<RedisClient>> ConnectRedis(absl::string_view address,
                                                          RedisConnectionOptions base) {
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
    return NewRedisClusterClient(std::move(options));
  }
  absl::StatusOr<RedisConnectionOptions> parsed = ParseRedisAddress(address);
  if (!parsed.ok()) return parsed.status();
  base.host = parsed->host;
  base.port = parsed->port;
  return NewHiredisClient(base);
}

}  // namespace xc
