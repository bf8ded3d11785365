#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/xmpp/gateway/v1/gateway.pb.h"

namespace xc {

// Writes batches to the gateway that holds the sessions. Thread-safe.
class GatewayDeliverer {
 public:
  virtual ~GatewayDeliverer() = default;
  // Returns the full JIDs the gateway no longer holds.
  virtual absl::StatusOr<std::vector<std::string>> Deliver(
      const std::string& gateway_id, const xmpp::gateway::v1::DeliverRequest& request) = 0;
};

}  // namespace xc
