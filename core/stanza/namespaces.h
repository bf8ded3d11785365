#pragma once

#include "absl/strings/string_view.h"

namespace xc {

inline constexpr absl::string_view kNsTls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr absl::string_view kNsSasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr absl::string_view kNsBind = "urn:ietf:params:xml:ns:xmpp-bind";
inline constexpr absl::string_view kNsSession = "urn:ietf:params:xml:ns:xmpp-session";
inline constexpr absl::string_view kNsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";
inline constexpr absl::string_view kNsStreams = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr absl::string_view kNsRoster = "jabber:iq:roster";
inline constexpr absl::string_view kNsRosterVer = "urn:xmpp:features:rosterver";
inline constexpr absl::string_view kNsPreApproval = "urn:xmpp:features:pre-approval";
inline constexpr absl::string_view kNsPing = "urn:xmpp:ping";
inline constexpr absl::string_view kNsDiscoInfo = "http://jabber.org/protocol/disco#info";
inline constexpr absl::string_view kNsDiscoItems = "http://jabber.org/protocol/disco#items";
inline constexpr absl::string_view kNsDelay = "urn:xmpp:delay";

}  // namespace xc
