#include "core/store/keys.h"

#include "absl/strings/str_cat.h"

namespace xc::keys {
namespace {

std::string UserKey(absl::string_view bare, absl::string_view suffix) {
  return absl::StrCat("{", bare, "}:", suffix);
}

}  // namespace

std::string Account(absl::string_view bare) { return UserKey(bare, "account"); }
std::string Roster(absl::string_view bare) { return UserKey(bare, "roster"); }
std::string RosterVersion(absl::string_view bare) { return UserKey(bare, "rver"); }
std::string RosterLog(absl::string_view bare) { return UserKey(bare, "rlog"); }
std::string Pending(absl::string_view bare) { return UserKey(bare, "pending"); }
std::string Sessions(absl::string_view bare) { return UserKey(bare, "sess"); }
std::string Presence(absl::string_view bare) { return UserKey(bare, "pres"); }
std::string LastUnavailable(absl::string_view bare) { return UserKey(bare, "lastoff"); }
std::string DomainUsers(absl::string_view domain) { return absl::StrCat("users:{", domain, "}"); }
std::string Gateways() { return "gateways"; }
std::string GatewayAlive(absl::string_view id) { return absl::StrCat("gateway:{", id, "}:alive"); }
std::string GatewaySessions(absl::string_view id) {
  return absl::StrCat("gateway:{", id, "}:sessions");
}
std::string GatewayFenced(absl::string_view id) {
  return absl::StrCat("gateway:{", id, "}:fenced");
}

}  // namespace xc::keys
