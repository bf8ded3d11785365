#include "tests/support/redis_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/redis/hiredis_client.h"
#include "core/redis/redis_cluster_client.h"

namespace xc::testing {
namespace {

// Ports come from below the kernel's ephemeral range (no outgoing connection takes one between
// its choice and redis-server's bind), each claimed for the life of this process by a lock file
// that the local clusters of the Python tests use too (tools/cluster/local_cluster.py), so that
// two tests running at once never pick the same port.
std::pair<int, int> PortPool(int span) {
  int eph_lo = 32768, eph_hi = 60999;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &eph_lo, &eph_hi) != 2) eph_lo = 32768, eph_hi = 60999;
    std::fclose(f);
  }
  if (eph_lo - span > 12000) return {10000, eph_lo - span};
  return {eph_hi + 1, 65536 - span};
}

bool BindFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return free;
}

// A free port (with `span`, port + span free too: a cluster node's bus port).
int ClaimPort(int span) {
  const char* tmp = std::getenv("XC_TMP");
  const std::string dir = std::string(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") + "/xc-ports";
  mkdir(dir.c_str(), 0777);
  const auto [lo, hi] = PortPool(span);
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(lo, hi - 1);
  for (int attempt = 0; attempt < 2000; ++attempt) {
    const int port = pick(rng);
    const std::string lock = dir + "/" + std::to_string(port) + ".lock";
    int fd = open(lock.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);
      continue;
    }
    if (BindFree(port) && (span == 0 || BindFree(port + span))) {
      return port;  // fd stays open: the claim lasts as long as this process
    }
    close(fd);
  }
  XC_LOG(FATAL) << "no free loopback port in [" << lo << ", " << hi << ")";
  return 0;
}

int FreePort() { return ClaimPort(0); }

int FreeClusterPort() { return ClaimPort(10000); }

int RunQuiet(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  XC_CHECK(pid >= 0) << "fork";
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

RedisCluster::RedisCluster(int masters) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string templ = std::string(tmp ? tmp : "/tmp") + "/rclusterXXXXXX";
  dir_ = mkdtemp(templ.data()) ? templ : "/tmp";
  for (int i = 0; i < masters; ++i) {
    int port = FreeClusterPort();
    ports_.push_back(port);
    std::string node_dir = dir_ + "/" + std::to_string(port);
    XC_CHECK(mkdir(node_dir.c_str(), 0700) == 0) << node_dir;
    pid_t pid = fork();
    XC_CHECK(pid >= 0) << "fork";
    if (pid == 0) {
      std::string p = std::to_string(port);
      freopen("/dev/null", "w", stdout);
      execl("/usr/bin/redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
            "--cluster-require-full-coverage", "no", "--save", "",
            "--appendonly", "no", "--dir", node_dir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    pids_.push_back(pid);
  }
  for (int i = 0; i < masters; ++i) {
    std::unique_ptr<RedisClient> c = NodeClient(i);
    int tries = 0;
    while (!c->Command({"PING"}).ok()) {
      XC_CHECK(++tries < 200) << "cluster node on " << ports_[i] << " did not start";
      absl::SleepFor(absl::Milliseconds(25));
    }
  }
  std::vector<std::string> create = {"/usr/bin/redis-cli", "--cluster", "create"};
  for (int port : ports_) create.push_back("127.0.0.1:" + std::to_string(port));
  create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  XC_CHECK(RunQuiet(create) == 0) << "redis-cli --cluster create failed";
  for (int i = 0; i < masters; ++i) {
    std::unique_ptr<RedisClient> c = NodeClient(i);
    for (int tries = 0;; ++tries) {
      absl::StatusOr<RedisReply> info = c->Command({"CLUSTER", "INFO"});
      if (info.ok() && info->str.find("cluster_state:ok") != std::string::npos) break;
      XC_CHECK(tries < 400) << "cluster did not converge";
      absl::SleepFor(absl::Milliseconds(25));
    }
  }
}

RedisCluster::~RedisCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

std::string RedisCluster::address() const {
  std::string out = "cluster://";
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (i > 0) out += ",";
    out += "127.0.0.1:" + std::to_string(ports_[i]);
  }
  return out;
}

std::unique_ptr<RedisClient> RedisCluster::NewClient() const {
  absl::StatusOr<std::unique_ptr<RedisClient>> c = ConnectRedis(address());
  XC_CHECK(c.ok()) << c.status();
  return *std::move(c);
}

std::unique_ptr<RedisClient> RedisCluster::NodeClient(int i) const {
  absl::StatusOr<std::unique_ptr<RedisClient>> c =
      ConnectRedis("127.0.0.1:" + std::to_string(ports_[i]));
  XC_CHECK(c.ok()) << c.status();
  return *std::move(c);
}

std::string RedisCluster::NodeId(int i) const {
  absl::StatusOr<RedisReply> id = NodeClient(i)->Command({"CLUSTER", "MYID"});
  XC_CHECK(id.ok()) << id.status();
  return id->str;
}

bool RedisCluster::Reshard(int from, int to, int slots) const {
  return RunQuiet({"/usr/bin/redis-cli", "--cluster", "reshard",
                   "127.0.0.1:" + std::to_string(ports_[from]), "--cluster-from", NodeId(from),
                   "--cluster-to", NodeId(to), "--cluster-slots", std::to_string(slots),
                   "--cluster-yes", "--cluster-pipeline", "20"}) == 0;
}

void RedisCluster::Kill(int i) {
  if (pids_[i] > 0) {
    kill(pids_[i], SIGKILL);
    waitpid(pids_[i], nullptr, 0);
    pids_[i] = -1;
  }
}

void RedisCluster::FlushAll() {
  for (int i = 0; i < size(); ++i) XC_CHECK(NodeClient(i)->Command({"FLUSHALL"}).ok());
}

RedisServer::RedisServer() {
  port_ = FreePort();
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string templ = std::string(tmp ? tmp : "/tmp") + "/redisXXXXXX";
  dir_ = mkdtemp(templ.data()) ? templ : "/tmp";
  Start();
}

void RedisServer::Start() {
  pid_ = fork();
  XC_CHECK(pid_ >= 0) << "fork";
  if (pid_ == 0) {
    std::string port = std::to_string(port_);
    freopen("/dev/null", "w", stdout);
    execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
          "--save", "", "--appendonly", "no", "--enable-debug-command", "local", "--dir",
          dir_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::unique_ptr<RedisClient> client = NewClient();
  for (int i = 0; i < 200; ++i) {
    if (client->Command({"PING"}).ok()) return;
    absl::SleepFor(absl::Milliseconds(25));
  }
  XC_LOG(FATAL) << "redis-server did not start on port " << port_;
}

void RedisServer::Kill() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

void RedisServer::Restart() {
  Kill();
  Start();
}

RedisServer::~RedisServer() { Kill(); }

std::unique_ptr<RedisClient> RedisServer::NewClient() const {
  absl::StatusOr<std::unique_ptr<RedisClient>> c = ConnectRedis(address());
  XC_CHECK(c.ok()) << c.status();
  return *std::move(c);
}

void RedisServer::FlushAll() {
  XC_CHECK(NewClient()->Command({"FLUSHALL"}).ok()) << "FLUSHALL";
}

}  // namespace xc::testing
