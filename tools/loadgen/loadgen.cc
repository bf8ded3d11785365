// xc-loadgen: the subscription workload of docs/performance.md against any XMPP server.
//
// K users log in (stream, optional STARTTLS, SASL PLAIN or SCRAM, bind, roster get, initial
// presence). User i subscribes to users i+1..i+C (ring); every client approves each request on
// receipt; a handshake is complete when the requester holds the contact's `subscribed` and the
// contact's presence. Then every user changes status once and each must receive its C
// contacts' new presence. Every expected stanza is counted, and what never came is listed.
// One thread, one epoll loop; writes of a loop turn leave in one send() per connection.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/auth/scram.h"
#include "core/xml/xml_stream_parser_expat.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "server host (IPv4)");
ABSL_FLAG(std::string, ports, "5222", "client ports, comma-separated (users spread over them)");
ABSL_FLAG(std::string, domain, "localhost", "XMPP domain");
ABSL_FLAG(std::string, prefix, "u", "users are PREFIX1..PREFIXK");
ABSL_FLAG(std::string, password, "secret", "password of every user");
ABSL_FLAG(int, users, 100, "K: users");
ABSL_FLAG(int, contacts, 10, "C: contacts each user subscribes to");
ABSL_FLAG(double, rate, 0, "handshakes started per second (0: burst, all at once)");
ABSL_FLAG(bool, tls, false, "STARTTLS before authenticating (the certificate is not checked)");
ABSL_FLAG(std::string, sasl, "PLAIN", "PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256");
ABSL_FLAG(int, login_concurrency, 200, "logins negotiating at once");
ABSL_FLAG(int, timeout_s, 120, "give up on a phase after this long");
ABSL_FLAG(double, hold_s, 0, "keep every connection open this long after the run (memory)");
ABSL_FLAG(int, print_missing, 20, "list at most this many missing stanzas on stderr");
ABSL_FLAG(std::string, latencies_out, "",
          "write every handshake as 'start_ms latency_ms' (start from the phase's start) to this "
          "file, in completion order: where in a run the slow ones were");

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Handshake {
  Clock::time_point sent;
  bool started = false;
  bool subscribed = false;
  bool presence = false;
  bool done = false;
};

// Client side of SCRAM (RFC 5802) for SHA-1 / SHA-256.
class ScramClient {
 public:
  ScramClient(xc::ScramHash hash, std::string user, std::string password)
      : hash_(hash), user_(std::move(user)), password_(std::move(password)) {
    unsigned char raw[18];
    RAND_bytes(raw, sizeof(raw));
    nonce_ = absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
  }
  std::string First() {
    first_bare_ = absl::StrCat("n=", user_, ",r=", nonce_);
    return absl::StrCat("n,,", first_bare_);
  }
  // The client-final message for `server_first`, or "" when it is unusable.
  std::string Final(const std::string& server_first) {
    std::string nonce, salt_b64;
    int iterations = 0;
    for (absl::string_view part : absl::StrSplit(server_first, ',')) {
      if (absl::ConsumePrefix(&part, "r=")) nonce = std::string(part);
      if (absl::ConsumePrefix(&part, "s=")) salt_b64 = std::string(part);
      if (absl::ConsumePrefix(&part, "i=")) (void)absl::SimpleAtoi(part, &iterations);
    }
    std::string salt;
    if (!absl::StartsWith(nonce, nonce_) || iterations < 1 ||
        !absl::Base64Unescape(salt_b64, &salt)) {
      return "";
    }
    const std::string salted = xc::Pbkdf2(hash_, password_, salt, iterations);
    const std::string client_key = Hmac(salted, "Client Key");
    const std::string stored_key = Digest(client_key);
    const std::string without_proof = absl::StrCat("c=biws,r=", nonce);
    auth_message_ = absl::StrCat(first_bare_, ",", server_first, ",", without_proof);
    std::string proof = Hmac(stored_key, auth_message_);
    for (size_t i = 0; i < proof.size(); ++i) proof[i] ^= client_key[i];
    server_key_ = Hmac(salted, "Server Key");
    return absl::StrCat(without_proof, ",p=", absl::Base64Escape(proof));
  }
  bool VerifyServer(const std::string& server_final) {
    return server_final == absl::StrCat("v=", absl::Base64Escape(Hmac(server_key_, auth_message_)));
  }

 private:
  const EVP_MD* Md() const { return hash_ == xc::ScramHash::kSha1 ? EVP_sha1() : EVP_sha256(); }
  std::string Hmac(const std::string& key, const std::string& data) const {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(Md(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  }
  std::string Digest(const std::string& data) const {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out, &len, Md(), nullptr);
    return std::string(reinterpret_cast<char*>(out), len);
  }

  xc::ScramHash hash_;
  std::string user_, password_, nonce_, first_bare_, auth_message_, server_key_;
};

class Loadgen;

class Conn final : public xc::XmlStreamHandler {
 public:
  Conn(Loadgen* lg, int index, int contacts)
      : handshakes(contacts + 1), away_from(contacts + 1, false), lg_(lg), index_(index) {}
  ~Conn() override;
  void Connect(const std::string& host, int port);
  void OnEvent(uint32_t events);
  void Send(absl::string_view s);
  void Flush();
  void OnStreamStart(const xc::XmlElement&, absl::string_view) override {}
  void OnStanza(xc::XmlElement stanza) override;
  void OnStreamEnd() override { Fail("stream closed by the server"); }
  void Fail(const std::string& why);
  const char* StageName() const {
    static const char* const kNames[] = {"connect",  "stream features", "STARTTLS",
                                         "TLS handshake", "features after TLS", "SASL",
                                         "SCRAM final", "features after SASL", "bind",
                                         "roster get", "initial presence", "ready"};
    return kNames[static_cast<int>(stage)];
  }

  enum class Stage {
    kConnecting, kFeatures1, kStartTls, kTlsHandshake, kFeatures2, kAuth, kScramFinal,
    kFeatures3, kBind, kRoster, kPresence, kReady
  };
  Stage stage = Stage::kConnecting;
  bool failed = false;
  std::string failure;
  int fd = -1;
  std::vector<Handshake> handshakes;  // by contact offset 1..C
  std::vector<bool> away_from;        // by contact offset 1..C
  bool dirty = false;                 // has output waiting for this turn's flush

 private:
  void Header();
  void Authenticate();
  void StartTlsHandshake();
  void ContinueTls();
  void Feed(const char* data, size_t n);
  void Restart();

  Loadgen* lg_;
  int index_;
  std::unique_ptr<xc::XmlStreamParser> parser_;
  bool restart_ = false;
  std::string out_;
  SSL* ssl_ = nullptr;
  std::unique_ptr<ScramClient> scram_;
};

class Loadgen {
 public:
  int Run();
  // "p7@d/..." → 7 (or -1)
  int UserIndex(absl::string_view jid) const;
  // The contact offset d (1..C) of user j for user i: j = i + d around the ring; 0 if none.
  int Offset(int i, int j) const {
    if (j < 1 || j > k_) return 0;
    int d = ((j - i) % k_ + k_) % k_;
    return d >= 1 && d <= c_ ? d : 0;
  }
  std::string User(int i) const { return absl::StrCat(prefix_, i); }
  std::string Bare(int i) const { return absl::StrCat(prefix_, i, "@", domain_); }
  void Watch(Conn* c, uint32_t events, bool add) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    epoll_ctl(epfd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
  }
  void MarkDirty(Conn* c) {
    if (!c->dirty) {
      c->dirty = true;
      dirty_.push_back(c);
    }
  }
  void ConnectionFailed() { ++failed_; }
  void LoggedIn() {
    ++logged_in_;
    last_login_ = Clock::now();
  }
  void HandshakeDone(Clock::time_point sent) {
    latencies_ms_.push_back(Seconds(sent, Clock::now()) * 1000);
    starts_ms_.push_back(Seconds(phase_start_, sent) * 1000);
    last_handshake_ = Clock::now();
  }
  void AwayReceived() {
    ++away_total_;
    last_away_ = Clock::now();
  }
  bool in_fanout() const { return phase_ == 3; }
  int epfd() const { return epfd_; }
  int contacts() const { return c_; }
  const std::string& domain() const { return domain_; }
  const std::string& password() const { return password_; }
  const std::string& sasl() const { return sasl_; }
  bool tls() const { return tls_; }
  SSL_CTX* ssl_ctx() const { return ssl_ctx_; }

 private:
  bool Pump(int timeout_ms);
  void StartLogins();
  void Report(const std::vector<std::string>& missing, size_t total_missing);

  int epfd_ = -1;
  std::string prefix_, domain_, password_, sasl_;
  bool tls_ = false;
  SSL_CTX* ssl_ctx_ = nullptr;
  int k_ = 0, c_ = 0;
  int phase_ = 0;
  int started_ = 0, logged_in_ = 0, failed_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> dirty_;
  std::vector<double> latencies_ms_;
  std::vector<double> starts_ms_;  // each handshake's start, from phase_start_
  Clock::time_point phase_start_;
  int away_total_ = 0;
  Clock::time_point last_login_, last_handshake_, last_away_;
  std::vector<int> ports_;
  std::string host_;
};

Conn::~Conn() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd >= 0) close(fd);
}

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
  lg_->Watch(this, EPOLLIN | EPOLLOUT, /*add=*/true);
  Header();
}

void Conn::Fail(const std::string& why) {
  if (failed) return;
  failed = true;
  lg_->ConnectionFailed();
  failure = why;
  epoll_ctl(lg_->epfd(), EPOLL_CTL_DEL, fd, nullptr);  // never spin on a dead socket
}

void Conn::Header() {
  Send(absl::StrCat("<stream:stream to='", lg_->domain(),
                    "' version='1.0' xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>"));
}

void Conn::Send(absl::string_view s) {
  if (failed) return;
  out_.append(s.data(), s.size());
  lg_->MarkDirty(this);
}

// Everything sent during the turn leaves in one send() (one TLS record with --tls).
void Conn::Flush() {
  dirty = false;
  if (failed || stage == Stage::kTlsHandshake) return;
  while (!out_.empty()) {
    if (ssl_ != nullptr) {
      int n = SSL_write(ssl_, out_.data(), static_cast<int>(out_.size()));
      if (n > 0) {
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) break;
      return Fail("TLS write failed");
    }
    ssize_t n = send(fd, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN)) break;
    return Fail(absl::StrCat("send: ", std::strerror(errno)));
  }
  lg_->Watch(this, EPOLLIN | (out_.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)), false);
}

void Conn::Feed(const char* data, size_t n) {
  if (parser_->Feed(absl::string_view(data, n)) != xc::XmlFault::kNone) {
    return Fail("malformed XML from the server");
  }
  if (restart_) Restart();
}

void Conn::Restart() {
  restart_ = false;
  parser_->Reset();
  Header();
}

void Conn::OnEvent(uint32_t events) {
  if (failed) return;
  if (stage == Stage::kTlsHandshake) return ContinueTls();
  if (events & EPOLLOUT) Flush();
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  char buf[65536];
  while (!failed) {
    if (ssl_ != nullptr) {
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n > 0) {
        Feed(buf, static_cast<size_t>(n));
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
      return Fail("TLS connection closed");
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      Feed(buf, static_cast<size_t>(n));
      if (stage == Stage::kTlsHandshake) return StartTlsHandshake();
      continue;
    }
    if (n == 0) return Fail("connection closed by the server");
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Fail("connection reset");
    return;
  }
}

void Conn::StartTlsHandshake() {
  ssl_ = SSL_new(lg_->ssl_ctx());
  SSL_set_fd(ssl_, fd);
  SSL_set_tlsext_host_name(ssl_, lg_->domain().c_str());
  SSL_set_connect_state(ssl_);
  ContinueTls();
}

void Conn::ContinueTls() {
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    stage = Stage::kFeatures2;
    parser_->Reset();
    Header();
    return Flush();
  }
  int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ) return lg_->Watch(this, EPOLLIN, false);
  if (err == SSL_ERROR_WANT_WRITE) return lg_->Watch(this, EPOLLIN | EPOLLOUT, false);
  Fail(absl::StrCat("TLS handshake: ", ERR_reason_error_string(ERR_peek_last_error()) ?: "failed"));
}

void Conn::Authenticate() {
  const std::string& mech = lg_->sasl();
  if (mech == "PLAIN") {
    std::string token = absl::Base64Escape(
        absl::StrCat(std::string(1, '\0'), lg_->User(index_), std::string(1, '\0'),
                     lg_->password()));
    Send(absl::StrCat("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>", token,
                      "</auth>"));
  } else {
    scram_ = std::make_unique<ScramClient>(
        mech == "SCRAM-SHA-1" ? xc::ScramHash::kSha1 : xc::ScramHash::kSha256, lg_->User(index_),
        lg_->password());
    Send(absl::StrCat("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='", mech, "'>",
                      absl::Base64Escape(scram_->First()), "</auth>"));
  }
  stage = Stage::kAuth;
}

void Conn::OnStanza(xc::XmlElement s) {
  const std::string& name = s.name();
  switch (stage) {
    case Stage::kFeatures1:
      if (name != "features") return;
      if (lg_->tls()) {
        if (s.FindChild("starttls", "urn:ietf:params:xml:ns:xmpp-tls") == nullptr) {
          return Fail("the server offers no STARTTLS");
        }
        Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        stage = Stage::kStartTls;
        return;
      }
      return Authenticate();
    case Stage::kStartTls:
      if (name != "proceed") return Fail("STARTTLS refused");
      parser_->Pause();
      stage = Stage::kTlsHandshake;  // OnEvent starts the handshake after this read
      return;
    case Stage::kFeatures2:
      if (name == "features") Authenticate();
      return;
    case Stage::kAuth:
      if (name == "challenge" && scram_) {
        std::string server_first;
        if (!absl::Base64Unescape(s.Text(), &server_first)) return Fail("bad SCRAM challenge");
        std::string final_message = scram_->Final(server_first);
        if (final_message.empty()) return Fail("unusable SCRAM challenge");
        Send(absl::StrCat("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
                          absl::Base64Escape(final_message), "</response>"));
        return;
      }
      if (name != "success") return Fail(absl::StrCat("authentication failed (", name, ")"));
      if (scram_) {
        std::string server_final;
        if (!absl::Base64Unescape(s.Text(), &server_final) || !scram_->VerifyServer(server_final)) {
          return Fail("the server's SCRAM signature does not verify");
        }
      }
      parser_->Pause();
      restart_ = true;
      stage = Stage::kFeatures3;
      return;
    case Stage::kFeatures3:
      if (name != "features") return;
      Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>lg</resource></bind></iq>");
      stage = Stage::kBind;
      return;
    case Stage::kBind:
      if (name == "iq" && s.Attribute("id") == "b") {
        if (s.Attribute("type") != "result") return Fail("bind refused");
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
      if (name == "presence" && lg_->UserIndex(s.Attribute("from")) == index_) {
        stage = Stage::kReady;
        lg_->LoggedIn();
      }
      return;
    default:
      break;
  }
  if (name == "iq") {
    if (s.Attribute("type") == "set") {  // a roster push
      Send(absl::StrCat("<iq type='result' id='", s.Attribute("id"), "'/>"));
    }
    return;
  }
  if (name != "presence") return;
  const std::string type = s.Attribute("type");
  const std::string from = s.Attribute("from");
  const int who = lg_->UserIndex(from);
  if (type == "subscribe") {
    Send(absl::StrCat("<presence type='subscribed' to='", from, "'/>"));
    return;
  }
  const int d = lg_->Offset(index_, who);
  if (d == 0) return;
  Handshake& h = handshakes[d];
  if (type == "subscribed") {
    h.subscribed = true;
  } else if (type.empty()) {
    if (lg_->in_fanout() && s.ChildText("show") == "away") {
      if (!away_from[d]) {
        away_from[d] = true;
        lg_->AwayReceived();
      }
      return;
    }
    h.presence = true;
  } else {
    return;
  }
  if (h.started && !h.done && h.subscribed && h.presence) {
    h.done = true;
    lg_->HandshakeDone(h.sent);
  }
}

int Loadgen::UserIndex(absl::string_view jid) const {
  if (!absl::ConsumePrefix(&jid, prefix_)) return -1;
  size_t end = jid.find('@');
  int v = 0;
  if (end == absl::string_view::npos || !absl::SimpleAtoi(jid.substr(0, end), &v)) return -1;
  return v;
}

bool Loadgen::Pump(int timeout_ms) {
  epoll_event events[256];
  int n = epoll_wait(epfd_, events, 256, timeout_ms);
  for (int i = 0; i < n; ++i) static_cast<Conn*>(events[i].data.ptr)->OnEvent(events[i].events);
  std::vector<Conn*> dirty;
  dirty.swap(dirty_);
  for (Conn* c : dirty) c->Flush();
  return n > 0;
}

void Loadgen::StartLogins() {
  while (started_ < k_ && started_ - logged_in_ < absl::GetFlag(FLAGS_login_concurrency)) {
    ++started_;
    auto c = std::make_unique<Conn>(this, started_, c_);
    c->stage = Conn::Stage::kFeatures1;
    c->Connect(host_, ports_[static_cast<size_t>(started_) % ports_.size()]);
    conns_[static_cast<size_t>(started_)] = std::move(c);
  }
  std::vector<Conn*> dirty;
  dirty.swap(dirty_);
  for (Conn* c : dirty) c->Flush();
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
  sasl_ = absl::GetFlag(FLAGS_sasl);
  tls_ = absl::GetFlag(FLAGS_tls);
  host_ = absl::GetFlag(FLAGS_host);
  k_ = absl::GetFlag(FLAGS_users);
  c_ = std::min(absl::GetFlag(FLAGS_contacts), k_ - 1);
  for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_ports), ',')) {
    int port = 0;
    if (absl::SimpleAtoi(p, &port)) ports_.push_back(port);
  }
  if (ports_.empty() || k_ < 2 || c_ < 1) {
    std::fprintf(stderr, "xc-loadgen: need --ports, --users >= 2 and --contacts >= 1\n");
    return 2;
  }
  if (sasl_ != "PLAIN" && sasl_ != "SCRAM-SHA-1" && sasl_ != "SCRAM-SHA-256") {
    std::fprintf(stderr, "xc-loadgen: --sasl must be PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256\n");
    return 2;
  }
  if (tls_) {
    ssl_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ssl_ctx_, SSL_VERIFY_NONE, nullptr);  // load testing, not trust
    SSL_CTX_set_mode(ssl_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
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
    if (started_ == k_ && logged_in_ + failed_ >= k_) break;
  }
  const double login_s = Seconds(t1, last_login_);

  // Phase 2: handshakes, burst or paced.
  phase_ = 2;
  std::deque<std::pair<int, int>> todo;
  for (int i = 1; i <= k_; ++i) {
    for (int d = 1; d <= c_; ++d) todo.emplace_back(i, d);
  }
  const size_t expected = todo.size();
  const double rate = absl::GetFlag(FLAGS_rate);
  const auto t2 = Clock::now();
  phase_start_ = t2;
  size_t sent = 0;
  while (latencies_ms_.size() < expected && Clock::now() < deadline(t2)) {
    size_t due = rate > 0 ? static_cast<size_t>(Seconds(t2, Clock::now()) * rate) + 1 : expected;
    while (sent < due && !todo.empty()) {
      auto [i, d] = todo.front();
      todo.pop_front();
      Conn* c = conns_[static_cast<size_t>(i)].get();
      if (c != nullptr && c->stage == Conn::Stage::kReady && !c->failed) {
        Handshake& h = c->handshakes[d];
        h.sent = Clock::now();
        h.started = true;
        c->Send(absl::StrCat("<presence type='subscribe' to='", Bare((i - 1 + d) % k_ + 1), "'/>"));
        // The contact's presence or `subscribed` may have come first (a retransmission).
        if (h.subscribed && h.presence) {
          h.done = true;
          HandshakeDone(h.sent);
        }
      }
      ++sent;
    }
    Pump(rate > 0 ? 1 : 5);
  }
  const double handshake_s = Seconds(t2, last_handshake_);
  const size_t handshakes = latencies_ms_.size();
  if (const std::string out = absl::GetFlag(FLAGS_latencies_out); !out.empty()) {
    if (FILE* f = std::fopen(out.c_str(), "w")) {
      for (size_t n = 0; n < handshakes; ++n) {
        std::fprintf(f, "%.3f %.3f\n", starts_ms_[n], latencies_ms_[n]);
      }
      std::fclose(f);
    } else {
      std::fprintf(stderr, "cannot write %s: %s\n", out.c_str(), std::strerror(errno));
    }
  }

  // Phase 3: everyone changes status once; each expects its C contacts' new presence.
  phase_ = 3;
  const auto t3 = Clock::now();
  for (int i = 1; i <= k_; ++i) {
    Conn* c = conns_[static_cast<size_t>(i)].get();
    if (c != nullptr && c->stage == Conn::Stage::kReady) {
      c->Send("<presence><show>away</show></presence>");
    }
  }
  const int expected_away = k_ * c_;
  while (away_total_ < expected_away && Clock::now() < deadline(t3)) Pump(5);
  const double fanout_s = Seconds(t3, last_away_);

  // What never came, by name: failed logins first (they explain what follows), then
  // handshakes, then fan-out presences.
  std::vector<std::string> missing;
  size_t total_missing = 0;
  const size_t limit = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_print_missing)));
  auto miss = [&](std::string line) {
    ++total_missing;
    if (missing.size() < limit) missing.push_back(std::move(line));
  };
  int failed = 0;
  for (int i = 1; i <= k_; ++i) {
    Conn* c = conns_[static_cast<size_t>(i)].get();
    if (c == nullptr) continue;
    if (c->failed) ++failed;
    if (c->stage != Conn::Stage::kReady) {
      miss(absl::StrCat(Bare(i), ": login did not complete (",
                        c->failed ? c->failure : absl::StrCat("waiting at ", c->StageName()),
                        ")"));
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 1; i <= k_; ++i) {
      Conn* c = conns_[static_cast<size_t>(i)].get();
      if (c == nullptr || c->stage != Conn::Stage::kReady) continue;
      for (int d = 1; d <= c_; ++d) {
        const Handshake& h = c->handshakes[d];
        const std::string contact = Bare((i - 1 + d) % k_ + 1);
        if (pass == 0 && !h.done) {
          miss(absl::StrCat(Bare(i), " -> ", contact, ": no ",
                            !h.subscribed && !h.presence ? "subscribed and no presence"
                            : !h.subscribed              ? "subscribed"
                                                         : "presence"));
        }
        if (pass == 1 && !c->away_from[d]) {
          miss(absl::StrCat(Bare(i), ": no away presence from ", contact));
        }
      }
    }
  }
  for (const std::string& line : missing) std::fprintf(stderr, "missing: %s\n", line.c_str());
  if (total_missing > missing.size()) {
    std::fprintf(stderr, "missing: ... and %zu more\n", total_missing - missing.size());
  }

  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  const long lost = static_cast<long>(expected - handshakes) + (expected_away - away_total_) +
                    (k_ - logged_in_);
  std::printf(
      "{\"users\":%d,\"contacts\":%d,\"mode\":\"%s\",\"tls\":%s,\"sasl\":\"%s\","
      "\"logins\":%d,\"logins_per_s\":%.1f,"
      "\"handshakes\":%zu,\"handshakes_expected\":%zu,\"handshakes_per_s\":%.1f,"
      "\"handshake_ms_p50\":%.2f,\"handshake_ms_p95\":%.2f,\"handshake_ms_p99\":%.2f,"
      "\"fanout_presences\":%d,\"fanout_expected\":%d,\"fanout_per_s\":%.1f,"
      "\"failed_connections\":%d,\"lost\":%ld,\"loadgen_cpu_s\":%.2f}\n",
      k_, c_, rate > 0 ? "paced" : "burst", tls_ ? "true" : "false", sasl_.c_str(), logged_in_,
      logged_in_ / std::max(login_s, 1e-9), handshakes, expected,
      handshakes / std::max(handshake_s, 1e-9), Percentile(latencies_ms_, 0.50),
      Percentile(latencies_ms_, 0.95), Percentile(latencies_ms_, 0.99), away_total_,
      expected_away, away_total_ / std::max(fanout_s, 1e-9), failed, lost, cpu);
  std::fflush(stdout);
  const double hold = absl::GetFlag(FLAGS_hold_s);
  if (hold > 0) {
    // Keep the sessions (answering the server) while someone measures memory.
    const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(hold * 1000));
    while (Clock::now() < until) Pump(50);
  }
  return lost == 0 && failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Loadgen lg;
  return lg.Run();
}
