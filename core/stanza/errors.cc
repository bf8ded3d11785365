#include "core/stanza/errors.h"

#include "absl/strings/cord.h"
#include "core/stanza/namespaces.h"
#include "core/xml/xml_serializer.h"

namespace xc {
namespace {

constexpr absl::string_view kConditionPayload = "type.xc/xmpp-stanza-error";

struct ConditionInfo {
  StanzaErrorCondition condition;
  const char* name;
  StanzaErrorType type;
};

constexpr ConditionInfo kConditions[] = {
    {StanzaErrorCondition::kBadRequest, "bad-request", StanzaErrorType::kModify},
    {StanzaErrorCondition::kConflict, "conflict", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kFeatureNotImplemented, "feature-not-implemented",
     StanzaErrorType::kCancel},
    {StanzaErrorCondition::kForbidden, "forbidden", StanzaErrorType::kAuth},
    {StanzaErrorCondition::kGone, "gone", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kInternalServerError, "internal-server-error", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kItemNotFound, "item-not-found", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kJidMalformed, "jid-malformed", StanzaErrorType::kModify},
    {StanzaErrorCondition::kNotAcceptable, "not-acceptable", StanzaErrorType::kModify},
    {StanzaErrorCondition::kNotAllowed, "not-allowed", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kNotAuthorized, "not-authorized", StanzaErrorType::kAuth},
    {StanzaErrorCondition::kPolicyViolation, "policy-violation", StanzaErrorType::kModify},
    {StanzaErrorCondition::kRecipientUnavailable, "recipient-unavailable", StanzaErrorType::kWait},
    {StanzaErrorCondition::kRedirect, "redirect", StanzaErrorType::kModify},
    {StanzaErrorCondition::kRegistrationRequired, "registration-required", StanzaErrorType::kAuth},
    {StanzaErrorCondition::kRemoteServerNotFound, "remote-server-not-found",
     StanzaErrorType::kCancel},
    {StanzaErrorCondition::kRemoteServerTimeout, "remote-server-timeout", StanzaErrorType::kWait},
    {StanzaErrorCondition::kResourceConstraint, "resource-constraint", StanzaErrorType::kWait},
    {StanzaErrorCondition::kServiceUnavailable, "service-unavailable", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kSubscriptionRequired, "subscription-required", StanzaErrorType::kAuth},
    {StanzaErrorCondition::kUndefinedCondition, "undefined-condition", StanzaErrorType::kCancel},
    {StanzaErrorCondition::kUnexpectedRequest, "unexpected-request", StanzaErrorType::kWait},
};

}  // namespace

const char* StanzaErrorConditionName(StanzaErrorCondition condition) {
  for (const ConditionInfo& info : kConditions) {
    if (info.condition == condition) return info.name;
  }
  return "undefined-condition";
}

std::optional<StanzaErrorCondition> ParseStanzaErrorCondition(absl::string_view name) {
  for (const ConditionInfo& info : kConditions) {
    if (name == info.name) return info.condition;
  }
  return std::nullopt;
}

StanzaErrorType DefaultStanzaErrorType(StanzaErrorCondition condition) {
  for (const ConditionInfo& info : kConditions) {
    if (info.condition == condition) return info.type;
  }
  return StanzaErrorType::kCancel;
}

const char* StanzaErrorTypeName(StanzaErrorType type) {
  switch (type) {
    case StanzaErrorType::kAuth:
      return "auth";
    case StanzaErrorType::kCancel:
      return "cancel";
    case StanzaErrorType::kContinue:
      return "continue";
    case StanzaErrorType::kModify:
      return "modify";
    case StanzaErrorType::kWait:
      return "wait";
  }
  return "cancel";
}

const char* StreamErrorConditionName(StreamErrorCondition condition) {
  switch (condition) {
    case StreamErrorCondition::kBadFormat:
      return "bad-format";
    case StreamErrorCondition::kBadNamespacePrefix:
      return "bad-namespace-prefix";
    case StreamErrorCondition::kConflict:
      return "conflict";
    case StreamErrorCondition::kConnectionTimeout:
      return "connection-timeout";
    case StreamErrorCondition::kHostGone:
      return "host-gone";
    case StreamErrorCondition::kHostUnknown:
      return "host-unknown";
    case StreamErrorCondition::kImproperAddressing:
      return "improper-addressing";
    case StreamErrorCondition::kInternalServerError:
      return "internal-server-error";
    case StreamErrorCondition::kInvalidFrom:
      return "invalid-from";
    case StreamErrorCondition::kInvalidNamespace:
      return "invalid-namespace";
    case StreamErrorCondition::kInvalidXml:
      return "invalid-xml";
    case StreamErrorCondition::kNotAuthorized:
      return "not-authorized";
    case StreamErrorCondition::kNotWellFormed:
      return "not-well-formed";
    case StreamErrorCondition::kPolicyViolation:
      return "policy-violation";
    case StreamErrorCondition::kRemoteConnectionFailed:
      return "remote-connection-failed";
    case StreamErrorCondition::kReset:
      return "reset";
    case StreamErrorCondition::kResourceConstraint:
      return "resource-constraint";
    case StreamErrorCondition::kRestrictedXml:
      return "restricted-xml";
    case StreamErrorCondition::kSeeOtherHost:
      return "see-other-host";
    case StreamErrorCondition::kSystemShutdown:
      return "system-shutdown";
    case StreamErrorCondition::kUndefinedCondition:
      return "undefined-condition";
    case StreamErrorCondition::kUnsupportedEncoding:
      return "unsupported-encoding";
    case StreamErrorCondition::kUnsupportedFeature:
      return "unsupported-feature";
    case StreamErrorCondition::kUnsupportedStanzaType:
      return "unsupported-stanza-type";
    case StreamErrorCondition::kUnsupportedVersion:
      return "unsupported-version";
  }
  return "undefined-condition";
}

absl::Status StanzaErrorStatus(StanzaErrorCondition condition, absl::string_view message) {
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  switch (condition) {
    case StanzaErrorCondition::kItemNotFound:
      code = absl::StatusCode::kNotFound;
      break;
    case StanzaErrorCondition::kForbidden:
    case StanzaErrorCondition::kNotAuthorized:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case StanzaErrorCondition::kResourceConstraint:
    case StanzaErrorCondition::kPolicyViolation:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case StanzaErrorCondition::kNotAllowed:
    case StanzaErrorCondition::kConflict:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case StanzaErrorCondition::kServiceUnavailable:
    case StanzaErrorCondition::kFeatureNotImplemented:
      code = absl::StatusCode::kUnimplemented;
      break;
    case StanzaErrorCondition::kInternalServerError:
      code = absl::StatusCode::kInternal;
      break;
    default:
      break;
  }
  absl::Status status(code, message);
  status.SetPayload(kConditionPayload, absl::Cord(StanzaErrorConditionName(condition)));
  return status;
}

StanzaErrorCondition StanzaErrorConditionOf(const absl::Status& status) {
  if (auto payload = status.GetPayload(kConditionPayload)) {
    if (auto cond = ParseStanzaErrorCondition(std::string(*payload))) return *cond;
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return StanzaErrorCondition::kBadRequest;
    case absl::StatusCode::kNotFound:
      return StanzaErrorCondition::kItemNotFound;
    case absl::StatusCode::kPermissionDenied:
      return StanzaErrorCondition::kForbidden;
    case absl::StatusCode::kResourceExhausted:
      return StanzaErrorCondition::kResourceConstraint;
    case absl::StatusCode::kFailedPrecondition:
      return StanzaErrorCondition::kNotAllowed;
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return StanzaErrorCondition::kServiceUnavailable;
    default:
      return StanzaErrorCondition::kInternalServerError;
  }
}

XmlElement MakeErrorElement(StanzaErrorCondition condition, absl::string_view text) {
  XmlElement error("error", std::string(kNsClient));
  error.SetAttribute("type", StanzaErrorTypeName(DefaultStanzaErrorType(condition)));
  error.AddChild(StanzaErrorConditionName(condition), std::string(kNsStanzas));
  if (!text.empty()) {
    XmlElement& t = error.AddChild("text", std::string(kNsStanzas));
    t.SetAttribute("xml:lang", "en");
    t.AddText(text);
  }
  return error;
}

XmlElement MakeErrorReply(const XmlElement& stanza, StanzaErrorCondition condition,
                          absl::string_view text, absl::string_view server_jid) {
  XmlElement reply(stanza.name(), stanza.ns());
  std::string to = stanza.Attribute("to");
  std::string from = stanza.Attribute("from");
  if (to.empty()) to = std::string(server_jid);
  if (!to.empty()) reply.SetAttribute("from", to);
  if (!from.empty()) reply.SetAttribute("to", from);
  reply.SetAttribute("type", "error");
  if (stanza.HasAttribute("id")) reply.SetAttribute("id", stanza.Attribute("id"));
  reply.AddChild(MakeErrorElement(condition, text));
  return reply;
}

std::string StreamErrorXml(StreamErrorCondition condition, absl::string_view text) {
  std::string out = "<stream:error><";
  out += StreamErrorConditionName(condition);
  out += " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>";
  if (!text.empty()) {
    out += "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>";
    out += XmlEscapeText(text);
    out += "</text>";
  }
  out += "</stream:error>";
  return out;
}

}  // namespace xc
