#include "tests/support/redis_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/redis/hiredis_client.h"

namespace xc::testing {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

RedisServer::RedisServer() {
  port_ = FreePort();
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string templ = std::string(tmp ? tmp : "/tmp") + "/redisXXXXXX";
  dir_ = mkdtemp(templ.data()) ? templ : "/tmp";
  pid_ = fork();
  XC_CHECK(pid_ >= 0) << "fork";
  if (pid_ == 0) {
    std::string port = std::to_string(port_);
    freopen("/dev/null", "w", stdout);
    execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
          "--save", "", "--appendonly", "no", "--dir", dir_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::unique_ptr<RedisClient> client = NewClient();
  for (int i = 0; i < 200; ++i) {
    if (client->Command({"PING"}).ok()) return;
    absl::SleepFor(absl::Milliseconds(25));
  }
  XC_LOG(FATAL) << "redis-server did not start on port " << port_;
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::unique_ptr<RedisClient> RedisServer::NewClient() const {
  RedisConnectionOptions options;
  options.port = port_;
  return NewHiredisClient(options);
}

void RedisServer::FlushAll() {
  XC_CHECK(NewClient()->Command({"FLUSHALL"}).ok()) << "FLUSHALL";
}

}  // namespace xc::testing
