#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/async/task.h"
#include "proto/xmpp/gateway/v1/gateway.pb.h"

namespace xc {

// Writes stanzas to the gateway that holds their sessions. The items of one call reach the
// gateway together and in order. A coroutine on the router's loop.
class GatewayDeliverer {
 public:
  virtual ~GatewayDeliverer() = default;
  // Returns the full JIDs the gateway no longer holds.
  virtual Task<absl::StatusOr<std::vector<std::string>>> Deliver(
      const std::string& gateway_id, xmpp::gateway::v1::DeliverRequest request) = 0;
};

}  // namespace xc
