#pragma once

#include <string>

#include "absl/strings/string_view.h"

// The Redis key layout (docs/storage.md). Every key of one user carries the user's hash tag,
// "{alice@example.com}", so one user's state lives in one Redis Cluster slot and every
// per-user change is one atomic script.
namespace xc::keys {

std::string Account(absl::string_view bare);        // hash: credentials
std::string Roster(absl::string_view bare);         // hash: contact → RosterItemRecord
std::string RosterVersion(absl::string_view bare);  // counter: last roster version
std::string RosterLog(absl::string_view bare);      // zset: contact → version of last change
std::string Pending(absl::string_view bare);        // hash: contact → stored subscribe stanza
std::string Sessions(absl::string_view bare);       // hash: resource → SessionRecord
std::string Presence(absl::string_view bare);       // hash: resource → last presence XML
std::string LastUnavailable(absl::string_view bare);  // string: "unix_ms" of last logout
std::string DomainUsers(absl::string_view domain);  // set: bare JIDs of a domain
std::string Gateways();                             // hash: gateway id → gRPC address
std::string GatewayAlive(absl::string_view id);     // string with TTL: heartbeat
std::string GatewaySessions(absl::string_view id);  // set: full JIDs held by a gateway
// string with TTL: set by a router that cannot reach the gateway; the gateway stops beating,
// closes its streams, and re-registers once its sessions have been reaped.
std::string GatewayFenced(absl::string_view id);

}  // namespace xc::keys
