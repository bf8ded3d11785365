#include "core/xml/xml_stream_parser_expat.h"

#include <expat.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/base/random.h"
#include "core/xml/xml_serializer.h"

// Present in expat >= 2.6 and in Debian 12's security updates of 2.5.0 (2.5.0-1+deb12u2 on),
// absent from older 2.5.0 builds; the headers carry the same version number either way. A weak
// reference lets one binary build against either header and run against either library.
extern "C" XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled);
#pragma weak XML_SetReparseDeferralEnabled

namespace xc {

const char* XmlFaultName(XmlFault fault) {
  switch (fault) {
    case XmlFault::kNone:
      return "none";
    case XmlFault::kNotWellFormed:
      return "not-well-formed";
    case XmlFault::kRestrictedXml:
      return "restricted-xml";
    case XmlFault::kPolicyViolation:
      return "policy-violation";
    case XmlFault::kBadNamespacePrefix:
      return "bad-namespace-prefix";
    case XmlFault::kUnsupportedEncoding:
      return "unsupported-encoding";
  }
  return "unknown";
}

namespace {

constexpr char kSep = ' ';

// Idle streams give their expat parser back: a connected client costs a few bytes of stream
// state between stanzas instead of expat's ~8 KB of buffers, tables and pools. A parser given
// back between two stanzas sits inside its stream's root element, and every client stream has
// the same root (the same name and namespace declarations), so it can take the next stanza of
// any stream with that root as it is: no reset, no re-read header. Per thread; bounded.
class ParserPool {
 public:
  struct Idle {
    XML_Parser parser = nullptr;
    size_t fed = 0;  // bytes the parser has read so far
  };
  ~ParserPool() {
    for (auto& [root, idle] : inside_) {
      for (Idle& i : idle) XML_ParserFree(i.parser);
    }
  }
  std::optional<Idle> TakeInside(const std::string& root) {
    auto it = inside_.find(root);
    if (it == inside_.end() || it->second.empty()) return std::nullopt;
    Idle idle = it->second.back();
    it->second.pop_back();
    --count_;
    return idle;
  }
  void GiveInside(const std::string& root, XML_Parser parser, size_t fed) {
    if (count_ >= kMaxIdle) {
      XML_ParserFree(parser);
      return;
    }
    inside_[root].push_back({parser, fed});
    ++count_;
  }
  static ParserPool& ForThisThread() {
    thread_local ParserPool pool;
    return pool;
  }

 private:
  static constexpr size_t kMaxIdle = 64;
  std::map<std::string, std::vector<Idle>> inside_;
  size_t count_ = 0;
};

// A parser that read more than this since it was taken (a large stanza grew its buffers) is
// freed rather than kept idle.
constexpr size_t kMaxPooledRead = 64 * 1024;

constexpr size_t kFeedSlice = 8192;  // bounds how far past a size limit a single chunk can go

struct QName {
  std::string ns, local, prefix;
};

// expat (namespace triplet mode) names: "uri local prefix", "uri local" or "local".
QName SplitName(const XML_Char* raw) {
  QName q;
  absl::string_view s(raw);
  size_t a = s.find(kSep);
  if (a == absl::string_view::npos) {
    q.local = std::string(s);
    return q;
  }
  q.ns = std::string(s.substr(0, a));
  absl::string_view rest = s.substr(a + 1);
  size_t b = rest.find(kSep);
  if (b == absl::string_view::npos) {
    q.local = std::string(rest);
  } else {
    q.local = std::string(rest.substr(0, b));
    q.prefix = std::string(rest.substr(b + 1));
  }
  return q;
}

class ExpatXmlStreamParser final : public XmlStreamParser {
 public:
  ExpatXmlStreamParser(XmlStreamHandler* handler, XmlLimits limits)
      : handler_(handler), limits_(limits) {
    Create();
  }
  ~ExpatXmlStreamParser() override {
    if (parser_ != nullptr) XML_ParserFree(parser_);
  }

  XmlFault Feed(absl::string_view bytes) override {
    if (fault_ != XmlFault::kNone) return fault_;
    if (bytes.empty() || paused_) return fault_;
    if (parser_ == nullptr) Attach();
    XmlFault fault = FeedAttached(bytes);
    if (fault == XmlFault::kNone) MaybeDetach();
    return fault;
  }

 private:
  XmlFault FeedAttached(absl::string_view bytes) {
    while (!bytes.empty() && !paused_) {
      absl::string_view slice = bytes.substr(0, kFeedSlice);
      bytes.remove_prefix(slice.size());
      fed_ += slice.size();
      XML_Status status = XML_Parse(parser_, slice.data(), static_cast<int>(slice.size()), 0);
      if (fault_ != XmlFault::kNone) return fault_;
      if (status == XML_STATUS_ERROR) {
        if (paused_) break;  // Pause() aborts expat on purpose.
        XML_Error code = XML_GetErrorCode(parser_);
        XmlFault fault = XmlFault::kNotWellFormed;
        if (code == XML_ERROR_UNDEFINED_ENTITY || code == XML_ERROR_EXTERNAL_ENTITY_HANDLING) {
          fault = XmlFault::kRestrictedXml;
        } else if (code == XML_ERROR_UNKNOWN_ENCODING || code == XML_ERROR_INCORRECT_ENCODING) {
          fault = XmlFault::kUnsupportedEncoding;
        }
        return Fail(fault, XML_ErrorString(code));
      }
      if (depth_ >= 2 && fed_ - stanza_start_ > limits_.max_stanza_bytes) {
        return Fail(XmlFault::kPolicyViolation, "stanza too large");
      }
    }
    return fault_;
  }

  // Between stanzas, with every byte fed turned into events (nothing half-parsed inside
  // expat), the parser goes back to the pool; the stream's root and namespaces are kept.
  void MaybeDetach() {
    if (depth_ != 1 || paused_ || parser_ == nullptr || consumed_ != fed_) return;
    // An idle stream keeps only its root key (shared with the other streams of the thread that
    // opened the same root): the declarations it was built from and the element stack go.
    const std::string& key = RootKey();
    if (fed_ - attached_at_ > kMaxPooledRead) {
      XML_ParserFree(parser_);
    } else {
      ParserPool::ForThisThread().GiveInside(key, parser_, fed_);
    }
    parser_ = nullptr;
    std::vector<std::pair<std::string, std::string>>().swap(root_namespaces_);
    std::vector<XmlElement>().swap(stack_);
  }

  // The stream root's start tag reduced to what parsing depends on: its name and namespace
  // declarations (also what Attach() replays). Built once per stream; streams of one thread with the same root share one copy (a gateway's
  // thousands of client streams nearly all open the same root).
  const std::string& RootKey() {
    if (root_key_ == nullptr) {
      std::string key = absl::StrCat("<", root_qname_);
      for (const auto& [prefix, uri] : root_namespaces_) {
        absl::StrAppend(&key, prefix.empty() ? " xmlns" : absl::StrCat(" xmlns:", prefix), "='",
                        XmlEscapeAttribute(uri), "'");
      }
      key += ">";
      thread_local std::shared_ptr<const std::string> last;
      if (last == nullptr || *last != key) last = std::make_shared<const std::string>(std::move(key));
      root_key_ = last;
    }
    return *root_key_;
  }

  // A parser again, in the state it had between stanzas: an idle one already inside an
  // identical root, or a new one that reads the root's start tag again, silently.
  void Attach() {
    if (std::optional<ParserPool::Idle> idle = ParserPool::ForThisThread().TakeInside(RootKey())) {
      parser_ = idle->parser;
      XML_SetUserData(parser_, this);
      depth_ = 1;
      fed_ = idle->fed;
      consumed_ = fed_;
      attached_at_ = fed_;
      stanza_start_ = 0;
      return;
    }
    parser_ = XML_ParserCreateNS("UTF-8", kSep);
    Configure();
    const std::string header = RootKey();
    replaying_ = true;
    depth_ = 0;
    XML_Parse(parser_, header.data(), static_cast<int>(header.size()), 0);
    replaying_ = false;
    depth_ = 1;
    // Offsets count bytes given to this parser, the replayed header included.
    fed_ = header.size();
    consumed_ = fed_;
    attached_at_ = fed_;
    stanza_start_ = 0;
  }

 public:
  void Pause() override {
    if (paused_) return;
    paused_ = true;
    if (parser_ != nullptr) XML_StopParser(parser_, XML_FALSE);
  }

  void Reset() override {
    if (parser_ != nullptr) XML_ParserFree(parser_);
    stack_.clear();
    depth_ = 0;
    root_default_ns_.clear();
    root_qname_.clear();
    root_namespaces_.clear();
    root_key_.reset();
    paused_ = false;
    fault_ = XmlFault::kNone;
    fault_detail_.clear();
    Create();
  }

  void set_limits(const XmlLimits& limits) override { limits_ = limits; }
  const std::string& fault_detail() const override { return fault_detail_; }

 private:
  void Create() {
    parser_ = XML_ParserCreateNS("UTF-8", kSep);
    Configure();
  }

  void Configure() {
    // The salt of expat's hash tables (against crafted colliding names), given here: expat
    // draws its own through glibc's arc4random, one getrandom() system call per parser.
    XML_SetHashSalt(parser_, static_cast<unsigned long>(RandomU64() | 1));  // 0: expat draws
    XML_SetReturnNSTriplet(parser_, 1);
    XML_SetUserData(parser_, this);
    XML_SetElementHandler(parser_, &OnStart, &OnEnd);
    XML_SetCharacterDataHandler(parser_, &OnText);
    XML_SetCommentHandler(parser_, &OnComment);
    XML_SetProcessingInstructionHandler(parser_, &OnProcessingInstruction);
    XML_SetStartDoctypeDeclHandler(parser_, &OnDoctype);
    XML_SetEntityDeclHandler(parser_, &OnEntityDecl);
    XML_SetXmlDeclHandler(parser_, &OnXmlDecl);
    XML_SetStartNamespaceDeclHandler(parser_, &OnNamespaceDecl);
    XML_SetParamEntityParsing(parser_, XML_PARAM_ENTITY_PARSING_NEVER);
    // Debian's expat defers re-parsing a token split across reads (CVE-2023-52425 mitigation),
    // which would hold back a stanza until the client sends more bytes. Interactive streams need
    // every complete stanza at once; the quadratic-time risk it guards against is bounded here
    // by max_stanza_bytes.
    if (&XML_SetReparseDeferralEnabled != nullptr) {
      XML_SetReparseDeferralEnabled(parser_, XML_FALSE);
    }
    fed_ = 0;
    stanza_start_ = 0;
    consumed_ = 0;
    attached_at_ = 0;
  }

  XmlFault Fail(XmlFault fault, absl::string_view detail) {
    if (fault_ == XmlFault::kNone) {
      fault_ = fault;
      fault_detail_ = std::string(detail);
    }
    if (parser_ != nullptr) XML_StopParser(parser_, XML_FALSE);
    return fault_;
  }

  // The stream offset up to which expat has reported everything (after the current event).
  void MarkConsumed() {
    const long index = XML_GetCurrentByteIndex(parser_);
    if (index >= 0) consumed_ = static_cast<size_t>(index + XML_GetCurrentByteCount(parser_));
  }

  static ExpatXmlStreamParser* Self(void* data) { return static_cast<ExpatXmlStreamParser*>(data); }

  static void OnStart(void* data, const XML_Char* name, const XML_Char** attrs) {
    ExpatXmlStreamParser* self = Self(data);
    if (self->fault_ != XmlFault::kNone || self->paused_ || self->replaying_) return;
    QName q = SplitName(name);
    if (q.ns == kNsXml) {  // the reserved xml namespace holds attributes, never elements
      self->Fail(XmlFault::kNotWellFormed, "element in the xml namespace");
      return;
    }
    XmlElement element(q.local, q.ns);
    size_t count = 0;
    for (const XML_Char** a = attrs; *a; a += 2) {
      if (++count > self->limits_.max_attributes) {
        self->Fail(XmlFault::kPolicyViolation, "too many attributes");
        return;
      }
      QName an = SplitName(a[0]);
      if (an.ns == kNsXml) {
        element.SetAttribute(absl::StrCat("xml:", an.local), a[1]);
      } else {
        element.SetAttribute(an.local, a[1], an.ns);
      }
    }
    if (self->depth_ == 0) {
      self->depth_ = 1;
      self->root_qname_ = q.prefix.empty() ? q.local : absl::StrCat(q.prefix, ":", q.local);
      self->MarkConsumed();
      element.SetAttribute("xmlns", self->root_default_ns_);
      self->handler_->OnStreamStart(element, q.prefix);
      return;
    }
    if (self->depth_ == 1) {
      if (!q.prefix.empty() && q.ns == kNsClient) {
        self->Fail(XmlFault::kBadNamespacePrefix, "prefixed jabber:client element");
        return;
      }
      long index = XML_GetCurrentByteIndex(self->parser_);
      self->stanza_start_ = index < 0 ? self->fed_ : static_cast<size_t>(index);
    }
    if (self->depth_ > self->limits_.max_depth) {
      self->Fail(XmlFault::kPolicyViolation, "elements nested too deeply");
      return;
    }
    ++self->depth_;
    self->stack_.push_back(std::move(element));
  }

  static void OnEnd(void* data, const XML_Char* /*name*/) {
    ExpatXmlStreamParser* self = Self(data);
    if (self->fault_ != XmlFault::kNone || self->paused_) return;
    if (self->depth_ == 1) {
      self->depth_ = 0;
      self->handler_->OnStreamEnd();
      return;
    }
    --self->depth_;
    XmlElement done = std::move(self->stack_.back());
    self->stack_.pop_back();
    if (self->stack_.empty()) {
      long end = XML_GetCurrentByteIndex(self->parser_) + XML_GetCurrentByteCount(self->parser_);
      if (end >= 0 && static_cast<size_t>(end) - self->stanza_start_ > self->limits_.max_stanza_bytes) {
        self->Fail(XmlFault::kPolicyViolation, "stanza too large");
        return;
      }
      self->MarkConsumed();
      self->handler_->OnStanza(std::move(done));
    } else {
      self->stack_.back().AddChild(std::move(done));
    }
  }

  static void OnText(void* data, const XML_Char* text, int len) {
    ExpatXmlStreamParser* self = Self(data);
    if (self->fault_ != XmlFault::kNone || self->paused_) return;
    if (self->stack_.empty()) {  // whitespace keepalives between stanzas
      if (self->depth_ == 1) self->MarkConsumed();
      return;
    }
    self->stack_.back().AddText(absl::string_view(text, static_cast<size_t>(len)));
  }

  static void OnNamespaceDecl(void* data, const XML_Char* prefix, const XML_Char* uri) {
    ExpatXmlStreamParser* self = Self(data);
    if (self->depth_ != 0 || self->replaying_) return;
    if (prefix == nullptr) self->root_default_ns_ = uri ? uri : "";
    self->root_namespaces_.emplace_back(prefix ? prefix : "", uri ? uri : "");
  }

  static void OnComment(void* data, const XML_Char*) {
    Self(data)->Fail(XmlFault::kRestrictedXml, "comment");
  }
  static void OnProcessingInstruction(void* data, const XML_Char*, const XML_Char*) {
    Self(data)->Fail(XmlFault::kRestrictedXml, "processing instruction");
  }
  static void OnDoctype(void* data, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    Self(data)->Fail(XmlFault::kRestrictedXml, "document type declaration");
  }
  static void OnEntityDecl(void* data, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                           const XML_Char*, const XML_Char*, const XML_Char*) {
    Self(data)->Fail(XmlFault::kRestrictedXml, "entity declaration");
  }
  static void OnXmlDecl(void* data, const XML_Char* /*version*/, const XML_Char* encoding,
                        int standalone) {
    ExpatXmlStreamParser* self = Self(data);
    if (encoding != nullptr && !absl::EqualsIgnoreCase(encoding, "UTF-8")) {
      self->Fail(XmlFault::kUnsupportedEncoding, "encoding other than UTF-8");
    } else if (standalone == 0) {
      self->Fail(XmlFault::kRestrictedXml, "standalone='no'");
    }
  }

  XmlStreamHandler* handler_;
  XmlLimits limits_;
  XML_Parser parser_ = nullptr;  // null while the stream is idle (see MaybeDetach)
  std::string root_qname_;       // the stream root as written ("stream:stream")
  std::vector<std::pair<std::string, std::string>> root_namespaces_;  // declared on the root
  bool replaying_ = false;       // Attach() is re-reading the root: no events
  size_t consumed_ = 0;          // offset (in fed_'s terms) expat has reported events up to
  size_t attached_at_ = 0;       // fed_ when the current parser was taken
  std::shared_ptr<const std::string> root_key_;  // see RootKey()
  std::vector<XmlElement> stack_;
  size_t depth_ = 0;
  std::string root_default_ns_;  // the stream header's default namespace declaration
  size_t fed_ = 0;           // bytes given to the current expat parser
  size_t stanza_start_ = 0;  // stream byte offset where the current depth-1 element began
  bool paused_ = false;
  XmlFault fault_ = XmlFault::kNone;
  std::string fault_detail_;
};

}  // namespace

std::unique_ptr<XmlStreamParser> NewExpatXmlStreamParser(XmlStreamHandler* handler,
                                                         XmlLimits limits) {
  return std::make_unique<ExpatXmlStreamParser>(handler, limits);
}

}  // namespace xc
