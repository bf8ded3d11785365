#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/jid/jid.h"
#include "core/xml/xml_element.h"

namespace xc {

enum class Subscription { kNone, kTo, kFrom, kBoth, kRemove };

const char* SubscriptionName(Subscription subscription);
std::optional<Subscription> ParseSubscription(absl::string_view name);  // "" → kNone

// One <item/> of jabber:iq:roster (RFC 6121 §2.1.2), as data.
struct RosterItem {
  Jid jid;
  std::string name;
  Subscription subscription = Subscription::kNone;
  bool ask = false;       // ask='subscribe' (Pending Out); server-set only
  bool approved = false;  // approved='true' (pre-approval); server-set only
  std::vector<std::string> groups;
};

// <query xmlns='jabber:iq:roster' [ver]> with its items.
struct RosterQuery {
  std::optional<std::string> ver;
  std::vector<RosterItem> items;
};

// Reads a roster query. An item whose jid cannot be parsed gives jid-malformed; an unknown
// subscription value gives bad-request. Semantic checks (item count, groups, limits) belong to
// the roster service.
absl::StatusOr<RosterQuery> ParseRosterQuery(const XmlElement& query);
XmlElement SerializeRosterItem(const RosterItem& item);
XmlElement SerializeRosterQuery(const RosterQuery& query);

}  // namespace xc
