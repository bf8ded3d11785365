#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/xml/xml_element.h"

namespace xc {

// RFC 6120 §8.3.3 stanza error conditions.
enum class StanzaErrorCondition {
  kBadRequest,
  kConflict,
  kFeatureNotImplemented,
  kForbidden,
  kGone,
  kInternalServerError,
  kItemNotFound,
  kJidMalformed,
  kNotAcceptable,
  kNotAllowed,
  kNotAuthorized,
  kPolicyViolation,
  kRecipientUnavailable,
  kRedirect,
  kRegistrationRequired,
  kRemoteServerNotFound,
  kRemoteServerTimeout,
  kResourceConstraint,
  kServiceUnavailable,
  kSubscriptionRequired,
  kUndefinedCondition,
  kUnexpectedRequest,
};

// RFC 6120 §8.3.2 error types.
enum class StanzaErrorType { kAuth, kCancel, kContinue, kModify, kWait };

// RFC 6120 §4.9.3 stream error conditions.
enum class StreamErrorCondition {
  kBadFormat,
  kBadNamespacePrefix,
  kConflict,
  kConnectionTimeout,
  kHostGone,
  kHostUnknown,
  kImproperAddressing,
  kInternalServerError,
  kInvalidFrom,
  kInvalidNamespace,
  kInvalidXml,
  kNotAuthorized,
  kNotWellFormed,
  kPolicyViolation,
  kRemoteConnectionFailed,
  kReset,
  kResourceConstraint,
  kRestrictedXml,
  kSeeOtherHost,
  kSystemShutdown,
  kUndefinedCondition,
  kUnsupportedEncoding,
  kUnsupportedFeature,
  kUnsupportedStanzaType,
  kUnsupportedVersion,
};

const char* StanzaErrorConditionName(StanzaErrorCondition condition);
std::optional<StanzaErrorCondition> ParseStanzaErrorCondition(absl::string_view name);
const char* StanzaErrorTypeName(StanzaErrorType type);
// The type RFC 6120 recommends for a condition.
StanzaErrorType DefaultStanzaErrorType(StanzaErrorCondition condition);
const char* StreamErrorConditionName(StreamErrorCondition condition);

// A Status that carries an XMPP stanza error condition, so that a failure deep inside a service
// reaches the client as the condition it deserves.
absl::Status StanzaErrorStatus(StanzaErrorCondition condition, absl::string_view message);
// The condition of a Status: the carried one if any, otherwise one derived from its code
// (InvalidArgument → bad-request, NotFound → item-not-found, PermissionDenied → forbidden,
// ResourceExhausted → resource-constraint, FailedPrecondition → not-allowed,
// Unavailable/DeadlineExceeded → service-unavailable ... internal-server-error otherwise).
StanzaErrorCondition StanzaErrorConditionOf(const absl::Status& status);

// <error type='..'><condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>[<text/>]</error>
XmlElement MakeErrorElement(StanzaErrorCondition condition, absl::string_view text = "");

// The error reply to `stanza` (RFC 6120 §8.3.1): same element name, type='error', from/to
// swapped, id mirrored. `server_jid` becomes `from` when the original had no `to`.
// Callers must not answer a stanza that is itself an error.
XmlElement MakeErrorReply(const XmlElement& stanza, StanzaErrorCondition condition,
                          absl::string_view text = "", absl::string_view server_jid = "");

// "<stream:error><cond xmlns=.../>[<text>]</stream:error>" (the stream close tag is separate).
std::string StreamErrorXml(StreamErrorCondition condition, absl::string_view text = "");

}  // namespace xc
