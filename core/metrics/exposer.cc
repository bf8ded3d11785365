#include "core/metrics/exposer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace xc::metrics {
namespace {

constexpr size_t kMaxConnections = 64;
constexpr size_t kMaxRequestHead = 8192;
constexpr auto kConnectionDeadline = std::chrono::seconds(10);
constexpr auto kLingerDeadline = std::chrono::seconds(1);

std::string Answer(int status, std::string_view reason, std::string_view content_type,
                   std::string_view body, bool head_only, std::string_view extra_headers = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out.append(reason).append("\r\nContent-Type: ").append(content_type);
  out.append("\r\nContent-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append(extra_headers).append("Connection: close\r\n\r\n");
  if (!head_only) out.append(body);
  return out;
}

// Fills `addr` from "host:port", "[v6]:port", ":port" or "port".
absl::Status ParseAddress(const std::string& address, sockaddr_storage* addr, socklen_t* len) {
  std::string host;
  std::string port_text = address;
  if (size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad admin address ", address,
                                                   " (want host:port)"));
  }
  std::memset(addr, 0, sizeof(*addr));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &in6->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad admin address ", address));
    }
    *len = sizeof(sockaddr_in6);
    return absl::OkStatus();
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(addr);
  in4->sin_family = AF_INET;
  in4->sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty()) {
    in4->sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad admin address ", address,
                                                   " (the host must be an IP address)"));
  }
  *len = sizeof(sockaddr_in);
  return absl::OkStatus();
}

}  // namespace

struct Exposer::Connection {
  // kReading until the request head is complete, kWriting the answer, then kDraining: our side
  // is shut and what the client still sends is read and dropped until it closes, so that closing
  // with unread bytes does not reset the answer away (lingering close).
  enum State { kReading, kWriting, kDraining };
  int fd = -1;
  State state = kReading;
  std::string in;
  std::string out;
  size_t written = 0;
  std::chrono::steady_clock::time_point deadline;
};

Exposer::~Exposer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::StatusOr<std::unique_ptr<Exposer>> Exposer::Start(const std::string& address,
                                                        const Registry* registry,
                                                        std::function<bool()> ready) {
  sockaddr_storage addr;
  socklen_t len = 0;
  if (absl::Status s = ParseAddress(address, &addr, &len); !s.ok()) return s;
  std::unique_ptr<Exposer> e(new Exposer());
  e->registry_ = registry;
  e->ready_ = std::move(ready);
  e->listen_fd_ = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  e->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->listen_fd_ < 0 || e->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("admin socket: ", std::strerror(errno)));
  }
  int one = 1;
  setsockopt(e->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(e->listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(e->listen_fd_, 64) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", address, ": ", std::strerror(errno)));
  }
  getsockname(e->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  e->port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  e->thread_ = std::thread([raw = e.get()] { raw->Run(); });
  return e;
}

std::string Exposer::Respond(std::string_view head) const {
  std::string_view line = head.substr(0, head.find("\r\n"));
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
    return Answer(400, "Bad Request", "text/plain", "bad request line\n", false);
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return Answer(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false,
                  "Allow: GET, HEAD\r\n");
  }
  if (path == "/metrics") {
    return Answer(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry_->Serialize(),
                  head_only);
  }
  if (path == "/livez") return Answer(200, "OK", "text/plain", "ok\n", head_only);
  if (path == "/readyz") {
    bool ok = !ready_ || ready_();
    return ok ? Answer(200, "OK", "text/plain", "ready\n", head_only)
              : Answer(503, "Service Unavailable", "text/plain", "not ready\n", head_only);
  }
  return Answer(404, "Not Found", "text/plain", "no such path\n", head_only);
}

bool Exposer::Step(Connection& c, short revents, std::chrono::steady_clock::time_point now) const {
  if (now >= c.deadline || (revents & (POLLERR | POLLNVAL)) != 0) return false;
  if (c.state != Connection::kWriting && (revents & (POLLIN | POLLHUP)) != 0) {
    char buf[4096];
    ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
    if (n < 0 || c.state == Connection::kDraining) return true;
    c.in.append(buf, static_cast<size_t>(n));
    if (size_t end = c.in.find("\r\n\r\n"); end != std::string::npos) {
      c.out = Respond(std::string_view(c.in).substr(0, end));
    } else if (c.in.size() > kMaxRequestHead) {
      c.out = Answer(431, "Request Header Fields Too Large", "text/plain",
                     "request head too large\n", false);
    } else {
      return true;
    }
    c.state = Connection::kWriting;  // and try the write at once
  }
  if (c.state == Connection::kWriting) {
    ssize_t n = send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.written += static_cast<size_t>(n);
    if (c.written == c.out.size()) {
      shutdown(c.fd, SHUT_WR);
      c.state = Connection::kDraining;
      c.deadline = std::min(c.deadline, now + kLingerDeadline);
      std::string().swap(c.in);
      std::string().swap(c.out);
    }
  }
  return true;
}

void Exposer::Run() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(conns.size() < kMaxConnections ? POLLIN : 0), 0});
    int timeout_ms = -1;
    for (const Connection& c : conns) {
      short events = c.state == Connection::kWriting ? POLLOUT : POLLIN;
      fds.push_back({c.fd, events, 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now);
      int ms = static_cast<int>(std::max<int64_t>(left.count(), 0)) + 1;
      if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = ms;
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;  // the destructor asks us to stop
    now = std::chrono::steady_clock::now();
    // Connections first (fds[i + 2] is conns[i]), then new ones, so indexes stay aligned.
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      if (!Step(c, fds[i + 2].revents, now)) {
        close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(conns, [](const Connection& c) { return c.fd < 0; });
    if ((fds[1].revents & POLLIN) != 0) {
      while (conns.size() < kMaxConnections) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        Connection& c = conns.emplace_back();
        c.fd = fd;
        c.deadline = now + kConnectionDeadline;
      }
    }
  }
  for (const Connection& c : conns) close(c.fd);
}

void AddBuildInfo(Registry* registry, const std::string& prefix) {
  registry->AddGauge(prefix + "_build_info", "Build information; always 1.")
      .Add({{"version", "0.1.0"}})
      .Set(1);
}

}  // namespace xc::metrics
