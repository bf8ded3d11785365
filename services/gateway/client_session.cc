#include "services/gateway/client_session.h"

#include <errno.h>
#include <gsasl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/auth/scram.h"
#include "core/base/log.h"
#include "core/base/random.h"
#include "core/grpc/grpc_util.h"
#include "core/stanza/namespaces.h"
#include "core/stanza/presence.h"
#include "core/stanza/stanza.h"
#include "core/xml/xml_fragment.h"
#include "core/xml/xml_serializer.h"
#include "core/xml/xml_stream_parser_expat.h"

namespace xc {
namespace {

constexpr char kStreamClose[] = "</stream:stream>";

struct StreamVersion {
  int major = 0;
  int minor = 0;
};

// A stream header's version (RFC 6120 §4.7.5): "major.minor", two decimal integers compared
// as numbers (leading zeros ignored); nullopt when it is not that shape.
std::optional<StreamVersion> ParseStreamVersion(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() != 2) return std::nullopt;
  StreamVersion v;
  for (auto [part, out] : {std::pair{parts[0], &v.major}, std::pair{parts[1], &v.minor}}) {
    if (part.empty() || part.size() > 9 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(part, out)) {
      return std::nullopt;
    }
  }
  return v;
}

using DeliverItems = google::protobuf::RepeatedPtrField<xmpp::gateway::v1::DeliverItem>;

const DeliverItems& LocalItems(const xmpp::roster::v1::RosterResult& r) { return r.deliveries(); }
const DeliverItems& LocalItems(const xmpp::presence::v1::RouterResult& r) {
  return r.origin_items();
}

// What an input delivers to this gateway's own sessions comes back with its result (the
// router's return path) and is written here, in order, like a Deliver call's items.
void DeliverLocally(GatewayContext* ctx, const DeliverItems& items) {
  for (const xmpp::gateway::v1::DeliverItem& item : items) {
    std::shared_ptr<ClientSession> session = ctx->registry.Find(item.full_jid());
    if (session) session->Deliver(item.xml(), item.address_to_session());
  }
}

// `count` inputs for a backend, one unit of the batch with every other input the gateway's
// sessions produce in the same loop turn (CallBatcher): they travel in one call, in order.
// `fill(i, input)` writes input i; `each(i, status, result)` runs on the loop thread for every
// input in order, with its own outcome, after what it delivers to this gateway's sessions is
// written.
template <typename Result, typename Batcher, typename Fill, typename Each>
void AskEach(GatewayContext* ctx, Batcher* batcher, const char* method, int count, Fill fill,
             Each each) {
  metrics::Histogram* seconds = ctx->metrics->Backend(method);
  const int64_t start = EventLoop::NowNanos();
  batcher->Add(
      [&](auto* request) {
        request->set_origin_gateway(ctx->config.id);
        for (int i = 0; i < count; ++i) fill(i, request->add_inputs());
        return count;
      },
      [ctx, seconds, start, count, each = std::move(each)](const grpc::Status& status,
                                                           auto response, auto slice) mutable {
        seconds->Observe(static_cast<double>(EventLoop::NowNanos() - start) * 1e-9);
        for (int i = 0; i < count; ++i) {
          const int index = slice.first + i;
          if (!status.ok()) {
            each(i, status, Result::default_instance());
          } else if (index >= response->results_size()) {
            each(i, grpc::Status(grpc::StatusCode::INTERNAL, "short batch answer"),
                 Result::default_instance());
          } else {
            const Result& result = response->results(index);
            DeliverLocally(ctx, LocalItems(result));
            each(i,
                 result.code() == 0
                     ? grpc::Status::OK
                     : grpc::Status(static_cast<grpc::StatusCode>(result.code()), result.message()),
                 result);
          }
        }
      });
}

// One input: `done(status, result)`.
template <typename Result, typename Batcher, typename Fill, typename Done>
void Ask(GatewayContext* ctx, Batcher* batcher, const char* method, Fill fill, Done done) {
  AskEach<Result>(
      ctx, batcher, method, 1, [&fill](int, auto* input) { fill(input); },
      [done = std::move(done)](int, const grpc::Status& status, const Result& result) mutable {
        done(status, result);
      });
}

template <typename Fill, typename Done>
void AskRouter(GatewayContext* ctx, const char* method, Fill fill, Done done) {
  Ask<xmpp::presence::v1::RouterResult>(ctx, ctx->router, method, std::move(fill),
                                        std::move(done));
}

template <typename Fill, typename Done>
void AskRoster(GatewayContext* ctx, const char* method, Fill fill, Done done) {
  Ask<xmpp::roster::v1::RosterResult>(ctx, ctx->roster, method, std::move(fill), std::move(done));
}

}  // namespace

ClientSession::ClientSession(GatewayContext* context, int fd, std::string peer, bool direct_tls)
    : ctx_(context), fd_(fd), peer_(std::move(peer)), direct_tls_(direct_tls) {
  XmlLimits limits = ctx_->config.limits;
  limits.max_stanza_bytes = ctx_->config.pre_auth_max_stanza_bytes;
  parser_ = NewExpatXmlStreamParser(this, limits);
}

ClientSession::~ClientSession() {
  EndSasl();
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) close(fd_);
}

bool ClientSession::SaslAllowed() const {
  // RFC 6120 §13.8: authentication only inside TLS unless the operator allows plaintext.
  return TlsActive() || ctx_->config.allow_plaintext;
}

void ClientSession::Start() {
  ctx_->metrics->connections->Increment();
  if (direct_tls_) StartTls();
  std::shared_ptr<ClientSession> self = shared_from_this();
  ctx_->loop->Watch(fd_, EPOLLIN | EPOLLRDHUP, [self](uint32_t events) { self->OnEvents(events); });
}

void ClientSession::OnEvents(uint32_t events) {
  if (closed_) return;
  if (events & EPOLLOUT) FlushWrites();
  // While reading is paused only a hang-up or an error is reported: reading finds out which
  // (and ends the session on a reset or at the end of the stream).
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadSome();
}

void ClientSession::ReadSome() {
  char buf[16384];
  for (int round = 0; round < 8 && !closed_ && (!read_paused_ || round == 0); ++round) {
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      if (TlsActive()) {
        BIO_write(SSL_get_rbio(ssl_), buf, static_cast<int>(n));
        DriveTls();
      } else {
        OnPlaintext(absl::string_view(buf, static_cast<size_t>(n)));
      }
      if (static_cast<size_t>(n) < sizeof(buf)) return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    Close();  // EOF or reset: the session ends without a closing handshake
    return;
  }
}

void ClientSession::OnPlaintext(absl::string_view bytes) {
  if (closed_) return;
  in_feed_ = true;
  XmlFault fault = parser_->Feed(bytes);
  in_feed_ = false;
  if (pending_parser_reset_) {
    // A restart (STARTTLS) was asked for while the parser was running: everything after it
    // belongs to the new stream.
    pending_parser_reset_ = false;
    parser_->Reset();
    return;
  }
  if (closed_) return;
  switch (fault) {
    case XmlFault::kNone:
      break;
    case XmlFault::kRestrictedXml:
      return CloseWithError(StreamErrorCondition::kRestrictedXml, parser_->fault_detail());
    case XmlFault::kPolicyViolation:
      return CloseWithError(StreamErrorCondition::kPolicyViolation, parser_->fault_detail());
    case XmlFault::kBadNamespacePrefix:
      return CloseWithError(StreamErrorCondition::kBadNamespacePrefix, parser_->fault_detail());
    case XmlFault::kUnsupportedEncoding:
      return CloseWithError(StreamErrorCondition::kUnsupportedEncoding);
    case XmlFault::kNotWellFormed:
      return CloseWithError(StreamErrorCondition::kNotWellFormed, parser_->fault_detail());
  }
}

void ClientSession::StartTls() {
  // Whatever was written before (<proceed/>) still goes out in the clear.
  FlushPending();
  ssl_ = SSL_new(static_cast<SSL_CTX*>(ctx_->tls_context.load()));
  SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_accept_state(ssl_);
}

void ClientSession::DriveTls() {
  char plain[16384];
  while (!closed_) {
    int r = SSL_read(ssl_, plain, sizeof(plain));
    if (r > 0) {
      OnPlaintext(absl::string_view(plain, static_cast<size_t>(r)));
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    if (err != SSL_ERROR_ZERO_RETURN) {
      XC_LOG(INFO) << "TLS failure from " << peer_ << ": "
                   << ERR_reason_error_string(ERR_peek_last_error());
    }
    FlushTlsOutput();
    out_.clear();
    pending_.clear();  // nothing more can be said over a broken TLS stream
    Close();
    return;
  }
  if (closed_) return;
  if (SSL_is_init_finished(ssl_) && !tls_pending_.empty()) {
    std::string pending;
    pending.swap(tls_pending_);
    SSL_write(ssl_, pending.data(), static_cast<int>(pending.size()));
  }
  FlushTlsOutput();
}

void ClientSession::FlushTlsOutput() {
  DrainTlsOutput();
  FlushWrites();
}

void ClientSession::Write(absl::string_view bytes) {
  if (closed_) return;
  pending_.append(bytes.data(), bytes.size());
  if (pending_.size() + out_.size() > ctx_->config.max_write_buffer_bytes) {
    XC_LOG(WARNING) << "closing slow reader " << peer_ << " ("
                    << pending_.size() + out_.size() << " bytes queued)";
    pending_.clear();
    out_.clear();
    Close();
    return;
  }
  // Everything written during this loop turn leaves in one TLS record and one send() at its
  // end: a fan-out that gives this session ten presences costs one syscall, not ten.
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    std::weak_ptr<ClientSession> weak = weak_from_this();
    ctx_->loop->Defer([weak] {
      if (std::shared_ptr<ClientSession> self = weak.lock()) {
        self->flush_scheduled_ = false;
        self->FlushPending();
      }
    });
  }
}

void ClientSession::FlushPending() {
  if (closed_) return;
  if (!pending_.empty()) {
    if (TlsActive()) {
      if (!SSL_is_init_finished(ssl_)) {
        tls_pending_.append(pending_);
      } else {
        SSL_write(ssl_, pending_.data(), static_cast<int>(pending_.size()));
        DrainTlsOutput();
      }
    } else if (out_.empty()) {
      out_.swap(pending_);
    } else {
      out_.append(pending_);
    }
    pending_.clear();
    ReleaseIdleBuffer(&pending_);
  }
  FlushWrites();
}

void ClientSession::DrainTlsOutput() {
  BIO* wbio = SSL_get_wbio(ssl_);
  char buf[16384];
  int n;
  while ((n = BIO_read(wbio, buf, sizeof(buf))) > 0) out_.append(buf, static_cast<size_t>(n));
}

// An idle session holds no buffer: what a turn wrote or queued is freed once it is gone (one
// allocation per busy turn, against a few KB kept by each of thousands of idle sessions).
void ClientSession::ReleaseIdleBuffer(std::string* buffer) {
  if (buffer->empty() && buffer->capacity() > std::string().capacity()) {
    std::string().swap(*buffer);
  }
}

void ClientSession::FlushWrites() {
  size_t sent = 0;
  while (sent < out_.size()) {
    ssize_t n = send(fd_, out_.data() + sent, out_.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    out_.clear();
    Close();
    return;
  }
  if (sent == out_.size()) {
    out_.clear();
    ReleaseIdleBuffer(&out_);
  } else if (sent > 0) {
    out_.erase(0, sent);
  }
  bool want = !out_.empty();
  if (want != want_write_) {
    want_write_ = want;
    UpdateInterest();
  }
}

void ClientSession::UpdateInterest() {
  if (closed_) return;
  uint32_t events = read_paused_ ? 0 : EPOLLIN | EPOLLRDHUP;
  if (want_write_) events |= EPOLLOUT;
  ctx_->loop->Modify(fd_, events);
}

void ClientSession::Close() {
  if (closed_) return;
  if (!pending_.empty()) {
    // The last words (a stream error, </stream:stream>) come before the close.
    if (TlsActive() && SSL_is_init_finished(ssl_)) {
      SSL_write(ssl_, pending_.data(), static_cast<int>(pending_.size()));
      DrainTlsOutput();
    } else if (!TlsActive()) {
      out_.append(pending_);
    }
    pending_.clear();
  }
  if (!out_.empty()) {
    // Best effort: give the last bytes (a stream error) a chance to leave.
    (void)send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    out_.clear();
  }
  closed_ = true;
  ctx_->metrics->connections->Decrement();
  if (bound_) ctx_->metrics->sessions->Decrement();
  if (on_close_) {
    std::function<void()> on_close = std::move(on_close_);
    on_close();
  }
  shutdown(fd_, SHUT_RDWR);
  ctx_->loop->Unwatch(fd_);
  if (bound_) {
    ctx_->registry.Remove(full_jid_, this);
    std::string jid = full_jid_;
    const std::string& gateway = ctx_->config.id;
    AskRouter(
        ctx_, "EndSession",
        [&](xmpp::presence::v1::RouterInput* in) {
          xmpp::presence::v1::EndSessionRequest* r = in->mutable_end_session();
          r->set_gateway_id(gateway);
          r->set_full_jid(jid);
        },
        [jid](const grpc::Status& status, const xmpp::presence::v1::RouterResult&) {
          if (!status.ok()) XC_LOG(WARNING) << "EndSession " << jid << ": " << status.error_message();
        });
  }
}

void ClientSession::CloseWithError(StreamErrorCondition condition, absl::string_view text) {
  if (closed_) return;
  if (!header_sent_) SendHeader("");
  ctx_->metrics->stream_errors->Add({{"condition", StreamErrorConditionName(condition)}}).Increment();
  Write(StreamErrorXml(condition, text));
  Write(kStreamClose);
  Close();
}

void ClientSession::SendHeader(const std::string& client_from) {
  std::string header = absl::StrCat(
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
      "xmlns:stream='http://etherx.jabber.org/streams' id='",
      RandomId(16), "' from='", XmlEscapeAttribute(domain_.empty() ? ctx_->config.domains[0] : domain_),
      "'");
  if (!client_from.empty()) absl::StrAppend(&header, " to='", XmlEscapeAttribute(client_from), "'");
  if (!reply_version_.empty()) absl::StrAppend(&header, " version='", reply_version_, "'");
  absl::StrAppend(&header, " xml:lang='en'>");
  header_sent_ = true;
  Write(header);
}

void ClientSession::SendFeatures() {
  std::string features = "<stream:features>";
  if (!authenticated_) {
    const bool tls_offered = ctx_->tls_context.load() != nullptr && !TlsActive();
    if (tls_offered) {
      features += ctx_->config.tls_required
                      ? "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                      : "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    }
    // Mechanisms only where authentication may happen: inside TLS, or where the operator
    // allows plaintext; PLAIN never outside both (RFC 6120 §13.8.3).
    if (!(tls_offered && ctx_->config.tls_required) && SaslAllowed()) {
      features += "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>";
      if (ChannelBindingOffered()) {
        features +=
            "<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>";
      }
      features +=
          "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
          "<mechanism>PLAIN</mechanism></mechanisms>";
      if (ChannelBindingOffered()) {
        // XEP-0440: the channel-binding types the -PLUS mechanisms accept.
        features +=
            "<sasl-channel-binding xmlns='urn:xsf:sasl-cb:0'>"
            "<channel-binding type='tls-exporter'/><channel-binding type='tls-unique'/>"
            "</sasl-channel-binding>";
      }
    }
  } else {
    features +=
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
        "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
        "<ver xmlns='urn:xmpp:features:rosterver'/>"
        "<sub xmlns='urn:xmpp:features:pre-approval'/>";
  }
  features += "</stream:features>";
  Write(features);
}

void ClientSession::OnStreamStart(const XmlElement& root, absl::string_view prefix) {
  // RFC 6120 §4.7.5: the reply carries the lower of the two versions, none when the client sent
  // none (a pre-1.0 peer); this server speaks 1.0 only.
  const bool versioned = root.HasAttribute("version");
  const std::optional<StreamVersion> version =
      versioned ? ParseStreamVersion(root.Attribute("version")) : StreamVersion{0, 9};
  if (!versioned) {
    reply_version_.clear();
  } else if (version && version->major < 1) {
    reply_version_ = absl::StrCat(version->major, ".", version->minor);
  } else {
    reply_version_ = "1.0";
  }
  std::string to = root.Attribute("to");
  absl::StatusOr<Jid> to_jid = Jid::Parse(to);
  domain_ = to_jid.ok() ? to_jid->domain() : "";
  std::string client_from;
  if (absl::StatusOr<Jid> from = Jid::Parse(root.Attribute("from")); from.ok()) {
    client_from = from->BareString();
  }
  if (root.ns() != kNsStream || root.name() != "stream") {
    return CloseWithError(StreamErrorCondition::kInvalidNamespace);
  }
  if (prefix != "stream") return CloseWithError(StreamErrorCondition::kBadNamespacePrefix);
  if (root.Attribute("xmlns") != kNsClient) {
    return CloseWithError(StreamErrorCondition::kInvalidNamespace, "content namespace");
  }
  if (to.empty() || !to_jid.ok() || !ctx_->ServesDomain(domain_)) {
    domain_.clear();
    return CloseWithError(StreamErrorCondition::kHostUnknown);
  }
  if (authenticated_ && domain_ != user_.domain()) {
    return CloseWithError(StreamErrorCondition::kHostUnknown);
  }
  if (!version || version->major < 1) {
    return CloseWithError(StreamErrorCondition::kUnsupportedVersion,
                          version ? "XMPP 1.0 is required" : "version is not major.minor");
  }
  SendHeader(client_from);
  SendFeatures();
}

void ClientSession::OnStanza(XmlElement stanza) {
  if (closed_) return;
  if (!busy_ && InboxEmpty()) return Process(std::move(stanza));
  if (InboxCount() >= ctx_->config.max_queued_stanzas) {
    return CloseWithError(StreamErrorCondition::kPolicyViolation, "too many stanzas in flight");
  }
  // Waiting its turn behind a stanza in flight: kept as its XML, back to back with the others
  // (~60 bytes for a subscription, where the element tree is ten times that), and parsed again
  // when its turn comes. A client that sends ten subscriptions at once holds one short buffer.
  if (inbox_head_ > 0 && inbox_offset_ * 2 >= inbox_xml_.size()) {
    // Most of the buffer is taken already: drop that part rather than grow behind it (a session
    // that never runs empty would otherwise keep every stanza it ever queued).
    inbox_xml_.erase(0, inbox_offset_);
    inbox_sizes_.erase(inbox_sizes_.begin(), inbox_sizes_.begin() + static_cast<long>(inbox_head_));
    inbox_head_ = 0;
    inbox_offset_ = 0;
  }
  const size_t before = inbox_xml_.size();
  AppendXml(stanza, kNsClient, &inbox_xml_);
  inbox_sizes_.push_back(static_cast<uint32_t>(inbox_xml_.size() - before));
  if (!read_paused_ && InboxCount() >= kPauseReadingAt) {
    read_paused_ = true;
    UpdateInterest();
  }
}

void ClientSession::OnStreamEnd() {
  if (closed_) return;
  Write(kStreamClose);
  Close();
}

void ClientSession::ClearInbox() {
  inbox_xml_.clear();
  ReleaseIdleBuffer(&inbox_xml_);
  std::vector<uint32_t>().swap(inbox_sizes_);
  inbox_head_ = 0;
  inbox_offset_ = 0;
  MaybeResumeReading();
}

absl::string_view ClientSession::InboxHead() const {
  return absl::string_view(inbox_xml_).substr(inbox_offset_, inbox_sizes_[inbox_head_]);
}

void ClientSession::PopInbox() {
  inbox_offset_ += inbox_sizes_[inbox_head_++];
  if (InboxEmpty()) return ClearInbox();  // which resumes reading
  MaybeResumeReading();
}

void ClientSession::MaybeResumeReading() {
  if (read_paused_ && InboxCount() <= kResumeReadingAt) {
    read_paused_ = false;  // the loop reports what is waiting in the socket on its next turn
    UpdateInterest();
  }
}

void ClientSession::ProcessQueue() {
  while (!busy_ && !closed_ && !InboxEmpty()) {
    absl::StatusOr<XmlElement> next = ParseStanzaXml(InboxHead());
    PopInbox();
    if (!next.ok()) {  // it parsed once on the way in: a broken invariant
      XC_LOG(ERROR) << "queued stanza no longer parses: " << next.status();
      continue;
    }
    Process(*std::move(next));
  }
}

void ClientSession::Process(XmlElement next) {
  busy_ = true;  // a handler that finishes synchronously calls Finish(), which clears it
  if (!authenticated_ || !bound_) {
    if (KindOf(next) == StanzaKind::kIq && bound_ == false && authenticated_) {
      HandleStanza(std::move(next));
    } else {
      HandleNegotiation(next);
    }
  } else {
    HandleStanza(std::move(next));
  }
}

void ClientSession::Finish() {
  busy_ = false;
  // The next stanza is taken at the end of this turn: never recursively, and after the other
  // sessions' work of the turn.
  if (!closed_) ctx_->loop->Defer([self = shared_from_this()] { self->ProcessQueue(); });
}

void ClientSession::HandleNegotiation(const XmlElement& element) {
  if (!authenticated_ && element.ns() == kNsSasl) {
    if (element.name() == "auth") return HandleAuth(element);
    if (element.name() == "response" && scram_stage_ == ScramStage::kAwaitClientFirst) {
      std::string decoded;
      if (!absl::Base64Unescape(element.Text(), &decoded)) {
        EndSasl();
        SaslFailure("incorrect-encoding");
        return Finish();
      }
      const std::string mechanism = Sasl().mechanism;  // EndSasl() may free the state
      return StartScram(mechanism, decoded);
    }
    if (element.name() == "response" && scram_stage_ == ScramStage::kAwaitFinal) {
      return ScramStep(element.Text());
    }
    if (element.name() == "response" && plain_challenge_sent_) {
      plain_challenge_sent_ = false;
      std::string decoded;
      std::string text = element.Text();
      if (!absl::Base64Unescape(text, &decoded)) {
        SaslFailure("incorrect-encoding");
        return Finish();
      }
      return CheckPlain(decoded);
    }
    if (element.name() == "abort") {
      plain_challenge_sent_ = false;
      EndSasl();
      SaslFailure("aborted");
      return Finish();
    }
    SaslFailure("malformed-request");
    return Finish();
  }
  if (element.ns() == kNsTls && element.name() == "starttls") {
    if (ctx_->tls_context.load() == nullptr || TlsActive() || authenticated_) {
      // RFC 6120 §5.4.2.2: failure, then close.
      Write("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      Write(kStreamClose);
      Close();
      return;
    }
    Write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    // TLS starts right after the '>' (§5.4.3.3); nothing learnt before counts.
    parser_->Pause();
    pending_parser_reset_ = true;
    ClearInbox();
    StartTls();
    return Finish();
  }
  if (KindOf(element) == StanzaKind::kUnknown) {
    return CloseWithError(StreamErrorCondition::kUnsupportedStanzaType);
  }
  // RFC 6120 §4.3.5 / §7.1: no stanza before authentication and binding.
  CloseWithError(StreamErrorCondition::kNotAuthorized);
}

void ClientSession::SaslFailure(absl::string_view condition) {
  ctx_->metrics->logins->Add({{"result", std::string(condition)}}).Increment();
  Write(absl::StrCat("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><", condition,
                     "/></failure>"));
  if (condition == "not-authorized" && ++auth_failures_ >= ctx_->config.max_auth_attempts) {
    CloseWithError(StreamErrorCondition::kPolicyViolation, "too many failed authentications");
  }
}

void ClientSession::HandleAuth(const XmlElement& auth) {
  std::string mechanism = auth.Attribute("mechanism");
  EndSasl();
  if (!SaslAllowed()) {
    SaslFailure("encryption-required");
    return Finish();
  }
  std::string text = auth.Text();
  std::string decoded;
  if (text != "=" && !absl::Base64Unescape(text, &decoded)) {
    SaslFailure("incorrect-encoding");
    return Finish();
  }
  const bool plus = mechanism == "SCRAM-SHA-256-PLUS" || mechanism == "SCRAM-SHA-1-PLUS";
  if (mechanism == "SCRAM-SHA-256" || mechanism == "SCRAM-SHA-1" ||
      (plus && ChannelBindingOffered())) {
    Sasl().mechanism = mechanism;
    if (decoded.empty()) {
      scram_stage_ = ScramStage::kAwaitClientFirst;
      Write("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</challenge>");
      return Finish();
    }
    return StartScram(mechanism, decoded);
  }
  if (mechanism != "PLAIN") {
    SaslFailure("invalid-mechanism");
    return Finish();
  }
  if (decoded.empty()) {
    plain_challenge_sent_ = true;
    Write("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</challenge>");
    return Finish();
  }
  CheckPlain(decoded);
}

namespace {

// The user name of a SCRAM client-first message ("n,,n=user,r=nonce"; RFC 5802 §5.1), with
// "=2C" and "=3D" decoded.
std::optional<std::string> ScramUserName(absl::string_view client_first) {
  size_t gs2_end = client_first.find(',');
  if (gs2_end == absl::string_view::npos) return std::nullopt;
  size_t authz_end = client_first.find(',', gs2_end + 1);
  if (authz_end == absl::string_view::npos) return std::nullopt;
  absl::string_view bare = client_first.substr(authz_end + 1);
  if (bare.substr(0, 2) != "n=") return std::nullopt;
  absl::string_view name = bare.substr(2, bare.find(',') == absl::string_view::npos
                                                ? absl::string_view::npos
                                                : bare.find(',') - 2);
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name.substr(i, 3) == "=2C") {
      out.push_back(',');
      i += 2;
    } else if (name.substr(i, 3) == "=3D") {
      out.push_back('=');
      i += 2;
    } else {
      out.push_back(name[i]);
    }
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace

void ClientSession::EndSasl() {
  if (sasl_ != nullptr) gsasl_finish(sasl_);
  sasl_ = nullptr;
  scram_stage_ = ScramStage::kNone;
  sasl_state_.reset();
}

void ClientSession::StartScram(const std::string& mechanism, const std::string& client_first) {
  // RFC 5802 §6: a client that supports channel binding but saw no -PLUS offer says 'y'. We
  // offered -PLUS, so 'y' means someone stripped the offer on the way: fail (downgrade).
  if (client_first.substr(0, 2) == "y," && ChannelBindingOffered()) {
    XC_LOG(INFO) << "SCRAM from " << peer_ << ": 'y' flag although -PLUS was offered";
    EndSasl();
    SaslFailure("not-authorized");
    return Finish();
  }
  std::optional<std::string> name = ScramUserName(client_first);
  absl::StatusOr<Jid> user = name ? (name->find('@') == std::string::npos
                                         ? Jid::FromParts(*name, domain_, "")
                                         : Jid::Parse(*name))
                                  : absl::StatusOr<Jid>(absl::InvalidArgumentError("no name"));
  if (!user.ok() || user->local().empty() || user->domain() != domain_ || user->is_full()) {
    EndSasl();
    SaslFailure(name ? "not-authorized" : "malformed-request");
    return Finish();
  }
  scram_stage_ = ScramStage::kLookup;
  Sasl().user = *user;
  std::weak_ptr<ClientSession> weak = shared_from_this();
  GatewayContext* ctx = ctx_;
  Jid who = *user;
  std::string first = client_first;
  ctx_->work->Submit([ctx, weak, who, first, mechanism] {
    absl::StatusOr<std::optional<StoredAccount>> account = ctx->accounts->Lookup(who);
    ctx->loop->Post([weak, account, first, mechanism] {
      std::shared_ptr<ClientSession> self = weak.lock();
      if (!self || self->closed_ || self->scram_stage_ != ScramStage::kLookup) return;
      if (!account.ok()) {
        self->EndSasl();
        self->SaslFailure("temporary-auth-failure");
        return self->Finish();
      }
      if (!account->has_value()) {
        self->EndSasl();
        self->SaslFailure("not-authorized");
        return self->Finish();
      }
      self->Sasl().account = **account;
      Gsasl_session* sasl = nullptr;
      if (gsasl_server_start(static_cast<Gsasl*>(self->ctx_->sasl_context), mechanism.c_str(),
                             &sasl) != GSASL_OK) {
        self->EndSasl();
        self->SaslFailure("invalid-mechanism");
        return self->Finish();
      }
      self->sasl_ = sasl;
      gsasl_session_hook_set(sasl, self.get());
      self->scram_stage_ = ScramStage::kAwaitFinal;
      self->ScramStep(absl::Base64Escape(first));
    });
  });
}

void ClientSession::ScramStep(const std::string& base64_in) {
  char* out = nullptr;
  int rc = gsasl_step64(sasl_, base64_in.c_str(), &out);
  std::string payload = out != nullptr ? out : "";
  gsasl_free(out);
  if (rc == GSASL_NEEDS_MORE) {
    Write(absl::StrCat("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
                       payload.empty() ? "=" : payload, "</challenge>"));
    return Finish();
  }
  if (rc == GSASL_OK) {
    const char* authzid = gsasl_property_fast(sasl_, GSASL_AUTHZID);
    Jid user = Sasl().user;
    bool authz_ok = true;
    if (authzid != nullptr && *authzid != '\0') {
      absl::StatusOr<Jid> authz = Jid::Parse(authzid);
      authz_ok = authz.ok() && *authz == user;
    }
    EndSasl();
    if (!authz_ok) {
      SaslFailure("invalid-authzid");
      return Finish();
    }
    return AuthSucceeded(user, payload);
  }
  XC_LOG(INFO) << "SCRAM failed for " << Sasl().user.BareString() << ": " << gsasl_strerror(rc);
  EndSasl();
  SaslFailure(rc == GSASL_MECHANISM_PARSE_ERROR ? "malformed-request" : "not-authorized");
  Finish();
}

// libgsasl takes the salt, StoredKey and ServerKey base64-encoded (its header says hex for the
// keys, but 2.2 decodes base64: hex fails every proof).
int ClientSession::ProvideSaslProperty(int property, Gsasl_session* sasl) {
  if (sasl_state_ == nullptr || !sasl_state_->account) return GSASL_NO_CALLBACK;
  const ScramCredentials& c = absl::StartsWith(sasl_state_->mechanism, "SCRAM-SHA-1")
                                  ? sasl_state_->account->sha1
                                  : sasl_state_->account->sha256;
  switch (property) {
    case GSASL_CB_TLS_UNIQUE:
    case GSASL_CB_TLS_EXPORTER: {
      if (!ChannelBindingOffered()) return GSASL_NO_CALLBACK;
      std::string cb = ChannelBinding(property == GSASL_CB_TLS_EXPORTER);
      if (cb.empty()) return GSASL_NO_CALLBACK;
      gsasl_property_set(sasl, static_cast<Gsasl_property>(property),
                         absl::Base64Escape(cb).c_str());
      return GSASL_OK;
    }
    case GSASL_SCRAM_ITER:
      gsasl_property_set(sasl, GSASL_SCRAM_ITER, std::to_string(c.iterations).c_str());
      return GSASL_OK;
    case GSASL_SCRAM_SALT:
      gsasl_property_set(sasl, GSASL_SCRAM_SALT, absl::Base64Escape(c.salt).c_str());
      return GSASL_OK;
    case GSASL_SCRAM_STOREDKEY:
      gsasl_property_set(sasl, GSASL_SCRAM_STOREDKEY, absl::Base64Escape(c.stored_key).c_str());
      return GSASL_OK;
    case GSASL_SCRAM_SERVERKEY:
      gsasl_property_set(sasl, GSASL_SCRAM_SERVERKEY, absl::Base64Escape(c.server_key).c_str());
      return GSASL_OK;
    default:
      return GSASL_NO_CALLBACK;
  }
}

std::string ClientSession::ChannelBinding(bool exporter) const {
  if (exporter) {
    // RFC 9266: 32 bytes of keying material, label "EXPORTER-Channel-Binding", no context.
    static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
    unsigned char out[32];
    if (SSL_export_keying_material(ssl_, out, sizeof(out), kLabel, sizeof(kLabel) - 1, nullptr,
                                   0, 0) != 1) {
      return "";
    }
    return std::string(reinterpret_cast<char*>(out), sizeof(out));
  }
  // RFC 5929 tls-unique: the first Finished message of the latest handshake, the client's on a
  // full handshake. TLS 1.3 has no tls-unique by RFC 9266; clients built on OpenSSL (Python's
  // ssl, and with it slixmpp) still derive it this way there, so we accept the same value.
  unsigned char finished[EVP_MAX_MD_SIZE];
  size_t n = SSL_session_reused(ssl_) ? SSL_get_finished(ssl_, finished, sizeof(finished))
                                      : SSL_get_peer_finished(ssl_, finished, sizeof(finished));
  return std::string(reinterpret_cast<char*>(finished), n);
}

void ClientSession::CheckPlain(const std::string& message) {
  // RFC 4616: [authzid] NUL authcid NUL passwd
  std::vector<std::string> parts = absl::StrSplit(message, absl::MaxSplits('\0', 2));
  if (parts.size() != 3 || parts[1].empty()) {
    SaslFailure("malformed-request");
    return Finish();
  }
  absl::StatusOr<Jid> user = parts[1].find('@') == std::string::npos
                                 ? Jid::FromParts(parts[1], domain_, "")
                                 : Jid::Parse(parts[1]);
  if (!user.ok() || user->local().empty() || user->domain() != domain_ || user->is_full()) {
    SaslFailure("not-authorized");
    return Finish();
  }
  if (!parts[0].empty()) {
    absl::StatusOr<Jid> authz = Jid::Parse(parts[0]);
    if (!authz.ok() || *authz != *user) {
      SaslFailure("invalid-authzid");
      return Finish();
    }
  }
  // Hashing is slow on purpose; do it off the loop and come back with the verdict.
  std::weak_ptr<ClientSession> weak = shared_from_this();
  GatewayContext* ctx = ctx_;
  Jid who = *user;
  std::string password = parts[2];
  ctx_->work->Submit([ctx, weak, who, password] {
    absl::StatusOr<std::optional<StoredAccount>> account = ctx->accounts->Lookup(who);
    bool ok = account.ok() && account->has_value() &&
              VerifyPasswordAgainstScram(ScramHash::kSha256, (*account)->sha256, password);
    bool unavailable = !account.ok();
    ctx->loop->Post([weak, who, ok, unavailable] {
      std::shared_ptr<ClientSession> self = weak.lock();
      if (!self || self->closed_) return;
      if (unavailable) {
        self->SaslFailure("temporary-auth-failure");
        return self->Finish();
      }
      if (!ok) {
        self->SaslFailure("not-authorized");
        return self->Finish();
      }
      self->AuthSucceeded(who, "");
    });
  });
}

void ClientSession::AuthSucceeded(const Jid& user, const std::string& success_payload) {
  ctx_->metrics->logins->Add({{"result", "success"}}).Increment();
  user_ = user;
  authenticated_ = true;
  Write(success_payload.empty()
            ? std::string("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            : absl::StrCat("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", success_payload,
                           "</success>"));
  // RFC 6120 §6.4.6: the client restarts the stream; nothing parsed so far counts. The parser
  // cannot be reset from inside its own callback, so that case is deferred to OnPlaintext.
  parser_->set_limits(ctx_->config.limits);
  parser_->Pause();
  if (in_feed_) {
    pending_parser_reset_ = true;
  } else {
    parser_->Reset();
  }
  ClearInbox();
  Finish();
}

void ClientSession::HandleStanza(XmlElement stanza) {
  ctx_->metrics->stanzas_in.Count(KindOf(stanza), stanza.Attribute("type"));
  switch (KindOf(stanza)) {
    case StanzaKind::kIq:
      return HandleIq(std::move(stanza));
    case StanzaKind::kPresence:
      if (!bound_) return CloseWithError(StreamErrorCondition::kNotAuthorized);
      return HandlePresence(std::move(stanza));
    case StanzaKind::kMessage:
      if (!bound_) return CloseWithError(StreamErrorCondition::kNotAuthorized);
      return HandleMessage(std::move(stanza));
    case StanzaKind::kUnknown:
      break;
  }
  CloseWithError(StreamErrorCondition::kUnsupportedStanzaType);
}

void ClientSession::SendReply(const XmlElement& stanza) { Write(SerializeXml(stanza)); }

void ClientSession::SendError(const XmlElement& stanza, StanzaErrorCondition condition,
                              absl::string_view text) {
  if (IsErrorStanza(stanza)) return;  // never answer an error with an error
  XmlElement reply = MakeErrorReply(stanza, condition, text, domain_);
  if (bound_) reply.SetAttribute("to", full_jid_);
  SendReply(reply);
}

void ClientSession::BackendFailed(const XmlElement& stanza, const std::string& what) {
  XC_LOG(WARNING) << what;
  SendError(stanza, StanzaErrorCondition::kInternalServerError, "service temporarily unavailable");
}

void ClientSession::HandleBind(const XmlElement& iq) {
  if (++bind_attempts_ > ctx_->config.max_bind_attempts) {
    return CloseWithError(StreamErrorCondition::kPolicyViolation, "too many bind attempts");
  }
  const XmlElement* bind = iq.FindChild("bind", kNsBind);
  std::string resource = bind->ChildText("resource", kNsBind);
  if (!resource.empty()) {
    absl::StatusOr<std::string> prepared = PrepareResourcepart(resource);
    if (!prepared.ok()) {
      SendError(iq, StanzaErrorCondition::kBadRequest, prepared.status().message());
      return Finish();
    }
    resource = *prepared;
  }
  if (ctx_->fenced) {
    SendError(iq, StanzaErrorCondition::kResourceConstraint,
              "this node is rejoining the cluster; try again in a few seconds");
    return Finish();
  }
  std::shared_ptr<ClientSession> self = shared_from_this();
  AskRouter(
      ctx_, "BindSession",
      [&](xmpp::presence::v1::RouterInput* in) {
        xmpp::presence::v1::BindSessionRequest* r = in->mutable_bind_session();
        r->set_gateway_id(ctx_->config.id);
        r->set_bare_jid(user_.BareString());
        r->set_resource(resource);
      },
      [self, iq](const grpc::Status& status, const xmpp::presence::v1::RouterResult& result) {
        if (self->closed_) return;
        absl::StatusOr<Jid> full = Jid::Parse(result.full_jid());
        if (!status.ok() || !full.ok()) {
          self->BackendFailed(iq, "bind failed: " + status.error_message());
          return self->Finish();
        }
        self->full_ = *full;
        self->full_jid_ = full->ToString();
        self->bound_ = true;
        self->ctx_->metrics->sessions->Increment();
        self->ctx_->registry.Add(self->full_jid_, self);
        if (self->ctx_->fenced) {
          return self->CloseWithError(StreamErrorCondition::kInternalServerError,
                                      "this node lost contact with the cluster; reconnect");
        }
        XmlElement result_iq = MakeIqResult(iq);
        result_iq.RemoveAttribute("from");
        result_iq.RemoveAttribute("to");
        XmlElement& b = result_iq.AddChild("bind", std::string(kNsBind));
        b.AddChild("jid", std::string(kNsBind)).AddText(self->full_jid_);
        self->SendReply(result_iq);
        self->Finish();
      });
}

void ClientSession::HandleIq(XmlElement iq) {
  std::optional<IqType> type = ParseIqType(iq.Attribute("type"));
  if (iq.Attribute("id").empty() || !type) {
    SendError(iq, StanzaErrorCondition::kBadRequest, "IQ needs an id and a valid type");
    return Finish();
  }
  if (!bound_) {
    const XmlElement* payload = nullptr;
    if (absl::StatusOr<const XmlElement*> p = IqPayload(iq); p.ok()) payload = *p;
    if (*type == IqType::kSet && payload != nullptr && payload->Is("bind", kNsBind)) {
      return HandleBind(iq);
    }
    return CloseWithError(StreamErrorCondition::kNotAuthorized, "bind a resource first");
  }
  iq.SetAttribute("from", full_jid_);  // RFC 6120 §8.1.2.1: always stamped, never trusted
  std::string to = iq.Attribute("to");
  std::optional<Jid> target;
  if (!to.empty()) {
    absl::StatusOr<Jid> parsed = Jid::Parse(to);
    if (!parsed.ok()) {
      SendError(iq, StanzaErrorCondition::kJidMalformed);
      return Finish();
    }
    target = *parsed;
  }
  const bool for_account = !target || *target == user_ || *target == Jid::Parse(domain_).value_or(Jid());
  if (*type == IqType::kResult || *type == IqType::kError) {
    if (for_account) return Finish();  // a stray result or error is ignored (§8.2.3)
    return RouteToRouter(std::move(iq));
  }
  absl::StatusOr<const XmlElement*> payload = IqPayload(iq);
  if (!payload.ok()) {
    SendError(iq, StanzaErrorCondition::kBadRequest, payload.status().message());
    return Finish();
  }
  // Every roster get/set goes to the roster service, which answers `forbidden` for a roster
  // that is not the sender's (RFC 6121 §2.1.5).
  if ((*payload)->ns() == kNsRoster && (*payload)->name() == "query") {
    const bool is_get = *type == IqType::kGet;
    auto send_to_roster = [this, iq]() {
      std::shared_ptr<ClientSession> self = shared_from_this();
      AskRoster(
          ctx_, "HandleRosterIq",
          [&](xmpp::roster::v1::RosterInput* in) {
            xmpp::roster::v1::RosterIqRequest* r = in->mutable_roster_iq();
            r->set_session_jid(full_jid_);
            ToStanzaProto(iq, r->mutable_iq());
          },
          [self, iq](const grpc::Status& status, const xmpp::roster::v1::RosterResult& result) {
            if (self->closed_) return;
            if (!status.ok()) {
              self->BackendFailed(iq, "roster: " + status.error_message());
            } else {
              for (const auto& reply : result.replies()) {
                absl::StatusOr<XmlElement> e = FromStanzaProto(reply);
                if (!e.ok()) continue;
                e->SetAttribute("to", self->full_jid_);
                self->SendReply(*e);
              }
            }
            self->Finish();
          });
    };
    if (!is_get) return send_to_roster();
    // §2.2: a roster get makes this resource interested, before the roster is read, so no
    // push between the two is missed.
    std::shared_ptr<ClientSession> self = shared_from_this();
    AskRouter(
        ctx_, "SetInterested",
        [&](xmpp::presence::v1::RouterInput* in) {
          in->mutable_set_interested()->set_full_jid(full_jid_);
        },
        [self, iq, send_to_roster](const grpc::Status& status,
                                   const xmpp::presence::v1::RouterResult&) {
          if (self->closed_) return;
          if (!status.ok()) {
            self->BackendFailed(iq, "interest: " + status.error_message());
            return self->Finish();
          }
          send_to_roster();
        });
    return;
  }
  if (for_account) {
    HandleLocalIq(iq, **payload);
    return Finish();
  }
  if (!ctx_->ServesDomain(target->domain())) {
    SendError(iq, StanzaErrorCondition::kRemoteServerNotFound);
    return Finish();
  }
  RouteToRouter(std::move(iq));
}

void ClientSession::HandleLocalIq(const XmlElement& iq, const XmlElement& payload) {
  const bool get = iq.Attribute("type") == "get";
  XmlElement result = MakeIqResult(iq);
  result.SetAttribute("to", full_jid_);
  if (iq.Attribute("to").empty()) result.RemoveAttribute("from");
  if (get && payload.Is("ping", kNsPing)) return SendReply(result);
  if (!get && payload.Is("session", kNsSession)) return SendReply(result);
  if (get && payload.Is("query", kNsDiscoInfo) && iq.Attribute("to") == domain_) {
    XmlElement& q = result.AddChild("query", std::string(kNsDiscoInfo));
    XmlElement& id = q.AddChild("identity", std::string(kNsDiscoInfo));
    id.SetAttribute("category", "server");
    id.SetAttribute("type", "im");
    id.SetAttribute("name", "xmpp-cluster");
    for (absl::string_view f : {kNsDiscoInfo, kNsPing, kNsRoster, kNsRosterVer, kNsPreApproval}) {
      q.AddChild("feature", std::string(kNsDiscoInfo)).SetAttribute("var", f);
    }
    return SendReply(result);
  }
  if (payload.Is("bind", kNsBind)) return SendError(iq, StanzaErrorCondition::kNotAllowed);
  SendError(iq, StanzaErrorCondition::kServiceUnavailable);
}

void ClientSession::HandlePresence(XmlElement presence) {
  std::optional<PresenceType> type = ParsePresenceType(presence.Attribute("type"));
  if (!type) {
    SendError(presence, StanzaErrorCondition::kBadRequest, "unknown presence type");
    return Finish();
  }
  std::string to = presence.Attribute("to");
  std::optional<Jid> target;
  if (!to.empty()) {
    absl::StatusOr<Jid> parsed = Jid::Parse(to);
    if (!parsed.ok()) {
      SendError(presence, StanzaErrorCondition::kJidMalformed);
      return Finish();
    }
    target = *parsed;
    if (!ctx_->ServesDomain(target->domain())) {
      SendError(presence, StanzaErrorCondition::kRemoteServerNotFound);
      return Finish();
    }
  }
  if (IsSubscriptionType(*type)) {
    if (!target) {
      SendError(presence, StanzaErrorCondition::kBadRequest, "subscription without a contact");
      return Finish();
    }
    AddressSubscription(&presence, *target);
    std::vector<XmlElement> run;
    run.push_back(std::move(presence));
    // Under a backlog the batches are full anyway: the queued requests stay compact in the
    // inbox instead of waiting as request entries.
    while (run.size() < kMaxSubscriptionRun && !ctx_->roster->saturated()) {
      std::optional<XmlElement> next = TakeQueuedSubscription();
      if (!next) break;
      run.push_back(*std::move(next));
    }
    return SendSubscriptions(std::move(run));
  }
  presence.SetAttribute("from", full_jid_);
  std::shared_ptr<ClientSession> self = shared_from_this();
  AskRouter(
      ctx_, "HandlePresence",
      [&](xmpp::presence::v1::RouterInput* in) {
        xmpp::presence::v1::HandlePresenceRequest* r = in->mutable_presence();
        r->set_session_jid(full_jid_);
        ToStanzaProto(presence, r->mutable_presence());
      },
      [self, presence](const grpc::Status& status,
                       const xmpp::presence::v1::RouterResult& result) {
        if (self->closed_) return;
        if (!status.ok()) self->BackendFailed(presence, "presence: " + status.error_message());
        self->SendReplies(result.replies());
        self->Finish();
      });
}

// §3: bare JIDs only; `from` is the user's bare JID whatever the client wrote.
void ClientSession::AddressSubscription(XmlElement* presence, const Jid& target) const {
  presence->SetAttribute("from", user_.BareString());
  presence->SetAttribute("to", target.BareString());
}

// The subscription requests queued right behind this one leave with it, as one unit of the
// roster batch: the roster service runs a session's inputs of one call one after another, in
// order, so the stream is still processed in order (RFC 6120 §10.1) while a client that sends
// ten subscriptions pays one gateway-to-roster round trip for them, not ten.
std::optional<XmlElement> ClientSession::TakeQueuedSubscription() {
  if (InboxEmpty()) return std::nullopt;
  absl::StatusOr<XmlElement> next = ParseStanzaXml(InboxHead());
  // Only what HandlePresence would send to the roster as it is; anything else (an error to
  // answer, another kind of stanza) waits for its own turn.
  if (!next.ok() || KindOf(*next) != StanzaKind::kPresence) return std::nullopt;
  std::optional<PresenceType> type = ParsePresenceType(next->Attribute("type"));
  if (!type || !IsSubscriptionType(*type)) return std::nullopt;
  const std::string to = next->Attribute("to");
  if (to.empty()) return std::nullopt;
  absl::StatusOr<Jid> target = Jid::Parse(to);
  if (!target.ok() || !ctx_->ServesDomain(target->domain())) return std::nullopt;
  PopInbox();
  ctx_->metrics->stanzas_in.Count(StanzaKind::kPresence, next->Attribute("type"));
  AddressSubscription(&*next, *target);
  return *std::move(next);
}

void ClientSession::SendSubscriptions(std::vector<XmlElement> run) {
  std::shared_ptr<ClientSession> self = shared_from_this();
  // While in flight the requests are kept as their XML (an error reply needs them, rarely): a
  // burst holds thousands of these runs at once.
  auto stanzas = std::make_shared<std::vector<std::string>>();
  stanzas->reserve(run.size());
  AskEach<xmpp::roster::v1::RosterResult>(
      ctx_, ctx_->roster, "HandleSubscription", static_cast<int>(run.size()),
      [&](int i, xmpp::roster::v1::RosterInput* in) {
        xmpp::roster::v1::SubscriptionRequest* r = in->mutable_subscription();
        r->set_session_jid(full_jid_);
        ToStanzaProto(run[static_cast<size_t>(i)], r->mutable_presence());
        stanzas->push_back(r->presence().xml());
      },
      [self, stanzas](int i, const grpc::Status& status,
                      const xmpp::roster::v1::RosterResult& result) {
        if (self->closed_) return;
        const std::string& xml = (*stanzas)[static_cast<size_t>(i)];
        if (!status.ok()) self->RunFailed(xml, status.error_message());
        self->SendReplies(result.replies());
        if (static_cast<size_t>(i) + 1 == stanzas->size()) self->Finish();
      });
}

void ClientSession::RunFailed(const std::string& xml, const std::string& what) {
  absl::StatusOr<XmlElement> stanza = ParseStanzaXml(xml);
  if (!stanza.ok()) {  // it was serialized from a parsed element: a broken invariant
    XC_LOG(ERROR) << "subscription: " << what << "; its stanza no longer parses";
    return;
  }
  BackendFailed(*stanza, "subscription: " + what);
}

void ClientSession::HandleMessage(XmlElement message) {
  std::string to = message.Attribute("to");
  if (to.empty()) message.SetAttribute("to", user_.BareString());  // §8.1.1.1
  absl::StatusOr<Jid> target = Jid::Parse(message.Attribute("to"));
  if (!target.ok()) {
    SendError(message, StanzaErrorCondition::kJidMalformed);
    return Finish();
  }
  if (!ctx_->ServesDomain(target->domain())) {
    SendError(message, StanzaErrorCondition::kRemoteServerNotFound);
    return Finish();
  }
  message.SetAttribute("from", full_jid_);
  RouteToRouter(std::move(message));
}

void ClientSession::RouteToRouter(XmlElement stanza) {
  std::shared_ptr<ClientSession> self = shared_from_this();
  AskRouter(
      ctx_, "RouteStanza",
      [&](xmpp::presence::v1::RouterInput* in) {
        xmpp::presence::v1::RouteStanzaRequest* r = in->mutable_route();
        r->set_session_jid(full_jid_);
        ToStanzaProto(stanza, r->mutable_stanza());
      },
      [self, stanza](const grpc::Status& status, const xmpp::presence::v1::RouterResult& result) {
        if (self->closed_) return;
        if (!status.ok()) self->BackendFailed(stanza, "route: " + status.error_message());
        self->SendReplies(result.replies());
        self->Finish();
      });
}

void ClientSession::SendReplies(
    const google::protobuf::RepeatedPtrField<xmpp::stanza::v1::Stanza>& replies) {
  for (const auto& reply : replies) {
    absl::StatusOr<XmlElement> e = FromStanzaProto(reply);
    if (e.ok()) SendReply(*e);
  }
}

void ClientSession::Deliver(const std::string& xml, bool address_to_session) {
  if (closed_ || !bound_) return;
  StanzaKind kind;
  absl::string_view type;
  PeekStanza(xml, &kind, &type);
  ctx_->metrics->stanzas_out.Count(kind, type);
  Write(address_to_session ? SetRootAttribute(xml, "to", full_jid_) : xml);
}

}  // namespace xc
