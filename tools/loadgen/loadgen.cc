// xc-loadgen: the subscription workload of docs/performance.md against running gateways.
//
// K users log in (stream, SASL PLAIN, bind, roster get, initial presence). User i subscribes to
// users i+1..i+C (ring); every client approves each request on receipt; a handshake is complete
// when the requester holds the contact's `subscribed` and the contact's presence. Then every
// user changes status once and each must receive its C contacts' new presence. Every expected
// stanza is counted; what is missing is reported. One thread, one epoll loop.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/xml/xml_stream_parser_expat.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "gateway host");
ABSL_FLAG(std::string, ports, "5222", "gateway ports, comma-separated (users spread over them)");
ABSL_FLAG(std::string, domain, "localhost", "XMPP domain");
ABSL_FLAG(std::string, prefix, "u", "users are PREFIX1..PREFIXK");
ABSL_FLAG(std::string, password, "secret", "password of every user");
ABSL_FLAG(int, users, 100, "K: users");
ABSL_FLAG(int, contacts, 10, "C: contacts each user subscribes to");
ABSL_FLAG(double, rate, 0, "handshakes started per second (0: all at once)");
ABSL_FLAG(int, login_concurrency, 200, "logins negotiating at once");
ABSL_FLAG(int, timeout_s, 120, "give up on a phase after this long");

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Handshake {
  Clock::time_point sent;
  bool subscribed = false;
  bool presence = false;
  bool done = false;
};

class Loadgen;

class Conn final : public xc::XmlStreamHandler {
 public:
  Conn(Loadgen* lg, int index) : lg_(lg), index_(index) {}
  void Connect(const std::string& host, int port);
  void OnEvent(uint32_t events);
  void Send(absl::string_view s);
  void OnStreamStart(const xc::XmlElement&, absl::string_view) override {}
  void OnStanza(xc::XmlElement stanza) override;
  void OnStreamEnd() override { failed_ = true; }

  enum class Stage { kConnecting, kFeatures1, kAuth, kFeatures2, kBind, kRoster, kPresence, kReady };
  Stage stage = Stage::kConnecting;
  bool failed_ = false;
  int fd = -1;
  std::unordered_map<int, Handshake> handshakes;  // contact index → state
  int away_received = 0;

 private:
  void Header();
  void Flush();

  Loadgen* lg_;
  int index_;
  std::unique_ptr<xc::XmlStreamParser> parser_;
  bool reset_ = false;
  std::string out_;
};

class Loadgen {
 public:
  int Run();
  int ContactIndex(const std::string& jid) const;  // "u7@d/..." → 7, or -1
  std::string User(int i) const { return absl::StrCat(prefix_, i); }
  std::string Bare(int i) const { return absl::StrCat(prefix_, i, "@", domain_); }
  void Watch(Conn* c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev) != 0) epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev);
  }
  void LoggedIn() { ++logged_in_; last_login_ = Clock::now(); }
  void HandshakeDone(Clock::time_point sent) {
    latencies_ms_.push_back(Seconds(sent, Clock::now()) * 1000);
    last_handshake_ = Clock::now();
  }
  void AwayReceived() { ++away_total_; last_away_ = Clock::now(); }
  bool in_fanout() const { return phase_ == 3; }
  int epfd() const { return epfd_; }
  const std::string& domain() const { return domain_; }
  const std::string& password() const { return password_; }

 private:
  bool Pump(int timeout_ms);
  void StartLogins();
  int epfd_ = -1;
  std::string prefix_, domain_, password_;
  int k_ = 0, c_ = 0;
  int phase_ = 0;
  int started_ = 0, logged_in_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<double> latencies_ms_;
  int away_total_ = 0;
  Clock::time_point last_login_, last_handshake_, last_away_;
  std::vector<int> ports_;
  std::string host_;
};

void Conn::Connect(const std::string& host, int port) {
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  parser_ = xc::NewExpatXmlStreamParser(this);
  lg_->Watch(this, EPOLLIN | EPOLLOUT);
  Header();
}

void Conn::Header() {
  stage = stage == Stage::kConnecting ? Stage::kFeatures1 : Stage::kFeatures2;
  Send(absl::StrCat("<stream:stream to='", lg_->domain(),
                    "' version='1.0' xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>"));
}

void Conn::Send(absl::string_view s) {
  out_.append(s.data(), s.size());
  Flush();
}

void Conn::Flush() {
  while (!out_.empty()) {
    ssize_t n = send(fd, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN)) break;
    failed_ = true;
    return;
  }
  lg_->Watch(this, EPOLLIN | (out_.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)));
}

void Conn::OnEvent(uint32_t events) {
  if (failed_) {
    epoll_ctl(lg_->epfd(), EPOLL_CTL_DEL, fd, nullptr);  // never spin on a dead socket
    return;
  }
  if (events & EPOLLOUT) Flush();
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  char buf[65536];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (parser_->Feed(absl::string_view(buf, static_cast<size_t>(n))) != xc::XmlFault::kNone) {
        failed_ = true;
      }
      if (reset_) {
        reset_ = false;
        parser_->Reset();
        Header();
      }
      continue;
    }
    if (n == 0) failed_ = true;
    return;
  }
}

void Conn::OnStanza(xc::XmlElement s) {
  const std::string& name = s.name();
  switch (stage) {
    case Stage::kFeatures1:
      if (name == "features") {
        std::string token = absl::Base64Escape(absl::StrCat(std::string(1, '\0'), lg_->User(index_),
                                                            std::string(1, '\0'), lg_->password()));
        Send(absl::StrCat("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>",
                          token, "</auth>"));
        stage = Stage::kAuth;
      }
      return;
    case Stage::kAuth:
      if (name == "success") {
        parser_->Pause();
        reset_ = true;
      } else {
        failed_ = true;
      }
      return;
    case Stage::kFeatures2:
      if (name == "features") {
        Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>lg</resource></bind></iq>");
        stage = Stage::kBind;
      }
      return;
    case Stage::kBind:
      if (name == "iq" && s.Attribute("id") == "b") {
        Send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>");
        stage = Stage::kRoster;
      }
      return;
    case Stage::kRoster:
      if (name == "iq" && s.Attribute("id") == "r") {
        Send("<presence/>");
        stage = Stage::kPresence;
      }
      return;
    case Stage::kPresence:
      if (name == "presence" && lg_->ContactIndex(s.Attribute("from")) == index_) {
        stage = Stage::kReady;
        lg_->LoggedIn();
      }
      return;
    default:
      break;
  }
  if (name == "iq" && s.Attribute("type") == "set") {
    Send(absl::StrCat("<iq type='result' id='", s.Attribute("id"), "'/>"));  // roster push
    return;
  }
  if (name != "presence") return;
  const std::string type = s.Attribute("type");
  const std::string from = s.Attribute("from");
  int who = lg_->ContactIndex(from);
  if (type == "subscribe") {
    Send(absl::StrCat("<presence type='subscribed' to='", from, "'/>"));
    return;
  }
  auto it = handshakes.find(who);
  if (type == "subscribed" && it != handshakes.end()) {
    it->second.subscribed = true;
  } else if (type.empty() && who != index_) {
    if (lg_->in_fanout() && s.ChildText("show") == "away") {
      ++away_received;
      lg_->AwayReceived();
      return;
    }
    if (it != handshakes.end()) it->second.presence = true;
  } else {
    return;
  }
  if (it != handshakes.end() && !it->second.done && it->second.subscribed && it->second.presence) {
    it->second.done = true;
    lg_->HandshakeDone(it->second.sent);
  }
}

int Loadgen::ContactIndex(const std::string& jid) const {
  if (jid.compare(0, prefix_.size(), prefix_) != 0) return -1;
  int v = 0;
  size_t end = jid.find('@');
  if (end == std::string::npos || !absl::SimpleAtoi(jid.substr(prefix_.size(), end - prefix_.size()), &v)) {
    return -1;
  }
  return v;
}

bool Loadgen::Pump(int timeout_ms) {
  epoll_event events[256];
  int n = epoll_wait(epfd_, events, 256, timeout_ms);
  for (int i = 0; i < n; ++i) static_cast<Conn*>(events[i].data.ptr)->OnEvent(events[i].events);
  return n > 0;
}

void Loadgen::StartLogins() {
  while (started_ < k_ && started_ - logged_in_ < absl::GetFlag(FLAGS_login_concurrency)) {
    ++started_;
    auto c = std::make_unique<Conn>(this, started_);
    c->Connect(host_, ports_[static_cast<size_t>(started_) % ports_.size()]);
    conns_[static_cast<size_t>(started_)] = std::move(c);
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int Loadgen::Run() {
  prefix_ = absl::GetFlag(FLAGS_prefix);
  domain_ = absl::GetFlag(FLAGS_domain);
  password_ = absl::GetFlag(FLAGS_password);
  host_ = absl::GetFlag(FLAGS_host);
  k_ = absl::GetFlag(FLAGS_users);
  c_ = std::min(absl::GetFlag(FLAGS_contacts), k_ - 1);
  for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_ports), ',')) {
    int port = 0;
    if (absl::SimpleAtoi(p, &port)) ports_.push_back(port);
  }
  if (ports_.empty() || k_ < 2) {
    std::fprintf(stderr, "xc-loadgen: need --ports and --users >= 2\n");
    return 2;
  }
  epfd_ = epoll_create1(0);
  conns_.resize(static_cast<size_t>(k_) + 1);
  const auto deadline = [&](Clock::time_point start) {
    return start + std::chrono::seconds(absl::GetFlag(FLAGS_timeout_s));
  };

  // Phase 1: logins.
  phase_ = 1;
  const auto t1 = Clock::now();
  while (logged_in_ < k_ && Clock::now() < deadline(t1)) {
    StartLogins();
    Pump(5);
  }
  const double login_s = Seconds(t1, last_login_);

  // Phase 2: handshakes, burst or paced.
  phase_ = 2;
  std::deque<std::pair<int, int>> todo;
  for (int i = 1; i <= k_; ++i) {
    for (int d = 1; d <= c_; ++d) todo.emplace_back(i, (i - 1 + d) % k_ + 1);
  }
  const size_t expected = todo.size();
  const double rate = absl::GetFlag(FLAGS_rate);
  const auto t2 = Clock::now();
  size_t sent = 0;
  while (latencies_ms_.size() < expected && Clock::now() < deadline(t2)) {
    size_t due = rate > 0 ? static_cast<size_t>(Seconds(t2, Clock::now()) * rate) + 1 : expected;
    while (sent < due && !todo.empty()) {
      auto [i, j] = todo.front();
      todo.pop_front();
      Conn* c = conns_[static_cast<size_t>(i)].get();
      if (c != nullptr && c->stage == Conn::Stage::kReady) {
        c->handshakes[j].sent = Clock::now();
        c->Send(absl::StrCat("<presence type='subscribe' to='", Bare(j), "'/>"));
      }
      ++sent;
    }
    Pump(rate > 0 ? 1 : 5);
  }
  const double handshake_s = Seconds(t2, last_handshake_);
  const size_t handshakes = latencies_ms_.size();

  // Phase 3: everyone changes status once; each expects its C contacts' new presence.
  phase_ = 3;
  const auto t3 = Clock::now();
  for (int i = 1; i <= k_; ++i) {
    if (conns_[static_cast<size_t>(i)]) conns_[static_cast<size_t>(i)]->Send("<presence><show>away</show></presence>");
  }
  const int expected_away = k_ * c_;
  while (away_total_ < expected_away && Clock::now() < deadline(t3)) Pump(5);
  const double fanout_s = Seconds(t3, last_away_);

  int failed = 0;
  for (auto& c : conns_) failed += c && c->failed_ ? 1 : 0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  const long lost = static_cast<long>(expected - handshakes) + (expected_away - away_total_) +
                    (k_ - logged_in_);
  std::printf(
      "{\"users\":%d,\"contacts\":%d,\"mode\":\"%s\",\"logins\":%d,\"logins_per_s\":%.1f,"
      "\"handshakes\":%zu,\"handshakes_expected\":%zu,\"handshakes_per_s\":%.1f,"
      "\"handshake_ms_p50\":%.2f,\"handshake_ms_p95\":%.2f,\"handshake_ms_p99\":%.2f,"
      "\"fanout_presences\":%d,\"fanout_expected\":%d,\"fanout_per_s\":%.1f,"
      "\"failed_connections\":%d,\"lost\":%ld,\"loadgen_cpu_s\":%.2f}\n",
      k_, c_, rate > 0 ? "paced" : "burst", logged_in_, logged_in_ / std::max(login_s, 1e-9),
      handshakes, expected, handshakes / std::max(handshake_s, 1e-9),
      Percentile(latencies_ms_, 0.50), Percentile(latencies_ms_, 0.95),
      Percentile(latencies_ms_, 0.99), away_total_, expected_away,
      away_total_ / std::max(fanout_s, 1e-9), failed, lost, cpu);
  return lost == 0 && failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Loadgen lg;
  return lg.Run();
}
