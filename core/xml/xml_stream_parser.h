#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "core/xml/xml_element.h"

namespace xc {

// Why a stream's XML was refused; the gateway maps each to its RFC 6120 stream error.
enum class XmlFault {
  kNone,
  kNotWellFormed,        // malformed XML, or namespace errors
  kRestrictedXml,        // comment, PI, DTD, entity declaration or reference (RFC 6120 §11.1)
  kPolicyViolation,      // a limit below was exceeded
  kBadNamespacePrefix,   // a prefixed jabber:client stanza
  kUnsupportedEncoding,  // not UTF-8
};

const char* XmlFaultName(XmlFault fault);

struct XmlLimits {
  size_t max_stanza_bytes = 256 * 1024;  // one depth-1 element, as bytes on the wire
  size_t max_depth = 24;                 // nesting below the stream root
  size_t max_attributes = 64;            // per element
};

// Receives parse events. Called synchronously from inside XmlStreamParser::Feed.
class XmlStreamHandler {
 public:
  virtual ~XmlStreamHandler() = default;
  // The stream root opened. `root` carries its name, namespace and attributes ("xml:lang" is
  // named so, and "xmlns" holds the default namespace it declared, "" if none); `prefix` is the
  // root's namespace prefix ("" for none).
  virtual void OnStreamStart(const XmlElement& root, absl::string_view prefix) = 0;
  // A complete depth-1 element (a stanza or a negotiation element), namespaces resolved.
  virtual void OnStanza(XmlElement stanza) = 0;
  // The stream root closed.
  virtual void OnStreamEnd() = 0;
};

// An XMPP stream parser: bytes in any chunking in, events out. Never expands entities.
// Not thread-safe; one per connection.
class XmlStreamParser {
 public:
  virtual ~XmlStreamParser() = default;

  // Parses `bytes`. Returns kNone, or the fault that ended parsing; after a fault every later
  // Feed returns the same fault. Input after Pause() is discarded until Reset().
  virtual XmlFault Feed(absl::string_view bytes) = 0;

  // Called from a handler: deliver nothing more from the current input (e.g. after
  // <starttls/> or SASL success the next bytes belong to a restarted stream).
  virtual void Pause() = 0;

  // Forgets all state and expects a new stream header (RFC 6120 §4.3.3 stream restart).
  virtual void Reset() = 0;

  virtual void set_limits(const XmlLimits& limits) = 0;
  // Human-readable detail of the last fault, for logs and the stream error <text/>.
  virtual const std::string& fault_detail() const = 0;
};

}  // namespace xc
