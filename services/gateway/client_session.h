#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "core/jid/jid.h"
#include "core/stanza/errors.h"
#include "core/xml/xml_element.h"
#include "core/xml/xml_stream_parser.h"
#include "core/store/account_store.h"
#include "services/gateway/gateway_context.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;
typedef struct Gsasl_session Gsasl_session;

namespace xc {

// One client stream (RFC 6120): header and features per stage, SASL, resource binding, then
// stanzas, each processed in order (a stanza that needs a backend call holds back the ones
// behind it, §10.1) while other sessions proceed. Lives on the gateway's event loop thread;
// only Deliver* and Shutdown may be called from elsewhere, and they post to the loop.
class ClientSession final : public XmlStreamHandler,
                            public std::enable_shared_from_this<ClientSession> {
 public:
  // `direct_tls`: TLS starts with the connection (XEP-0368), not with <starttls/>.
  ClientSession(GatewayContext* context, int fd, std::string peer, bool direct_tls = false);
  ~ClientSession() override;

  void Start();
  // Runs once, on the loop thread, when the session closes.
  void set_on_close(std::function<void()> on_close) { on_close_ = std::move(on_close); }
  // Writes a stanza routed to this session (loop thread).
  void Deliver(const std::string& xml, bool address_to_session);
  // Ends the stream with a stream error and closes (loop thread).
  void CloseWithError(StreamErrorCondition condition, absl::string_view text = "");
  const std::string& full_jid() const { return full_jid_; }
  bool closed() const { return closed_; }
  bool authenticated() const { return authenticated_ && bound_; }

  // XmlStreamHandler
  void OnStreamStart(const XmlElement& root, absl::string_view prefix) override;
  void OnStanza(XmlElement stanza) override;
  void OnStreamEnd() override;

 private:
  void OnEvents(uint32_t events);
  void ReadSome();
  void OnPlaintext(absl::string_view bytes);
  void StartTls();
  void DriveTls();
  void FlushTlsOutput();
  void DrainTlsOutput();
  // Moves what Write() gathered this turn into the socket (through TLS when active).
  void FlushPending();
  static void ReleaseIdleBuffer(std::string* buffer);
  bool TlsActive() const { return ssl_ != nullptr; }
  // SCRAM-*-PLUS is offered (and a 'y' gs2 flag is a downgrade) inside TLS when enabled.
  bool ChannelBindingOffered() const { return TlsActive() && ctx_->config.channel_binding; }
  // Channel binding data of this TLS connection (RFC 5929 tls-unique, RFC 9266 tls-exporter).
  std::string ChannelBinding(bool exporter) const;
  bool SaslAllowed() const;
  void FlushWrites();
  // The socket's epoll interest: readable unless reading is paused, writable while out_ waits.
  void UpdateInterest();
  void Write(absl::string_view bytes);
  void Close();
  void SendHeader(const std::string& client_from);
  void SendFeatures();

  void ProcessQueue();
  void Process(XmlElement stanza);  // now, in order (the session is not busy)
  bool InboxEmpty() const { return inbox_head_ == inbox_sizes_.size(); }
  size_t InboxCount() const { return inbox_sizes_.size() - inbox_head_; }
  absl::string_view InboxHead() const;  // the oldest queued stanza's XML (inbox not empty)
  void PopInbox();
  void ClearInbox();
  void MaybeResumeReading();
  void Finish();  // the current stanza is done: take the next one
  void HandleNegotiation(const XmlElement& element);
  void HandleAuth(const XmlElement& auth);
  void CheckPlain(const std::string& message);
  void StartScram(const std::string& mechanism, const std::string& client_first);
  void ScramStep(const std::string& base64_in);
  void AuthSucceeded(const Jid& user, const std::string& success_payload);
  void EndSasl();

 public:
  // gsasl asks for credential and channel-binding properties (called on the loop thread).
  int ProvideSaslProperty(int property, Gsasl_session* sasl);

 private:
  void SaslFailure(absl::string_view condition);
  void HandleStanza(XmlElement stanza);
  void HandleBind(const XmlElement& iq);
  void HandleIq(XmlElement iq);
  void HandleLocalIq(const XmlElement& iq, const XmlElement& payload);
  void HandlePresence(XmlElement presence);
  void HandleMessage(XmlElement message);
  // Subscription requests waiting in the queue right behind the current one (see the .cc).
  static constexpr size_t kMaxSubscriptionRun = 16;
  std::optional<XmlElement> TakeQueuedSubscription();
  void AddressSubscription(XmlElement* presence, const Jid& target) const;
  void SendSubscriptions(std::vector<XmlElement> run);
  void RunFailed(const std::string& xml, const std::string& what);
  void RouteToRouter(XmlElement stanza);
  void SendReply(const XmlElement& stanza);
  void SendError(const XmlElement& stanza, StanzaErrorCondition condition,
                 absl::string_view text = "");
  void BackendFailed(const XmlElement& stanza, const std::string& what);
  void SendReplies(const google::protobuf::RepeatedPtrField<xmpp::stanza::v1::Stanza>& replies);

  GatewayContext* ctx_;
  int fd_;
  std::string peer_;
  std::unique_ptr<XmlStreamParser> parser_;
  std::string pending_;  // written this turn, not yet through TLS / into out_
  std::string out_;      // bytes for the socket
  bool flush_scheduled_ = false;
  bool want_write_ = false;
  bool closed_ = false;
  bool header_sent_ = false;
  std::string reply_version_ = "1.0";  // the version our stream header states (RFC 6120 §4.7.5)
  bool authenticated_ = false;
  bool bound_ = false;
  int auth_failures_ = 0;
  int bind_attempts_ = 0;
  bool plain_challenge_sent_ = false;
  bool pending_parser_reset_ = false;  // a restart requested while the parser is running
  bool in_feed_ = false;
  SSL* ssl_ = nullptr;
  bool direct_tls_ = false;
  std::string tls_pending_;  // plaintext written before the handshake finished
  Gsasl_session* sasl_ = nullptr;
  enum class ScramStage { kNone, kAwaitClientFirst, kLookup, kAwaitFinal };
  ScramStage scram_stage_ = ScramStage::kNone;
  // What SASL needs only while it runs (allocated by the first step, freed by EndSasl): an
  // authenticated session does not carry a mechanism name, a JID and two sets of SCRAM keys.
  struct SaslState {
    std::string mechanism;
    Jid user;
    std::optional<StoredAccount> account;
  };
  SaslState& Sasl() {
    if (sasl_state_ == nullptr) sasl_state_ = std::make_unique<SaslState>();
    return *sasl_state_;
  }
  std::unique_ptr<SaslState> sasl_state_;
  std::string domain_;
  Jid user_;  // bare, after SASL
  Jid full_;
  std::string full_jid_;
  std::function<void()> on_close_;
  // Stanzas waiting for the one in flight: their XML back to back, and their sizes; the oldest
  // not yet taken is inbox_sizes_[inbox_head_], at inbox_offset_.
  std::string inbox_xml_;
  std::vector<uint32_t> inbox_sizes_;
  size_t inbox_head_ = 0;
  size_t inbox_offset_ = 0;
  // Backpressure: with this many stanzas waiting, the socket is not read (TCP holds the rest,
  // and the client's sends slow down) until the queue is down to kResumeReadingAt.
  static constexpr size_t kPauseReadingAt = 8;
  static constexpr size_t kResumeReadingAt = 2;
  bool read_paused_ = false;
  bool busy_ = false;
};

}  // namespace xc
