#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/jid/jid.h"
#include "services/roster/roster_processor.h"
#include "services/roster/roster_store.h"

namespace xc {

// One disagreement between the two sides of a subscription, and what repairs it.
struct RosterFinding {
  std::string user;
  std::string contact;
  std::string problem;  // e.g. "user has subscription to contact, contact lacks from"
  std::string repair;   // the inbound stanza that heals it, e.g. "unsubscribed from contact to user"
  bool repaired = false;
};

struct ConsistencyReport {
  int contacts_checked = 0;
  std::vector<RosterFinding> findings;
  RosterOutput output;  // effects of the repairs (pushes, deliveries), in order, to dispatch
};

// Checks that both sides of every subscription of a user agree, and repairs what a flow
// interrupted between its two per-user steps leaves behind (docs/operations.md). A repair is
// the inbound half of the flow that did not happen, run through the processor, so it takes the
// same atomic steps and produces the same pushes and deliveries a normal flow would; re-running
// it is harmless. Where the state cannot tell which half was lost (a stuck `ask` with nothing on
// the other side: a lost request or a lost denial) the request is replayed: the contact is asked
// again rather than the request silently dropped.
class RosterConsistency {
 public:
  RosterConsistency(RosterStore* store, RosterProcessor* processor)
      : store_(store), processor_(processor) {}

  Task<absl::StatusOr<ConsistencyReport>> Check(Jid user, bool repair);

 private:
  // One direction: does `subscriber` receive `publisher`'s presence, consistently on both sides?
  // Returns true when it found (and, with `repair`, applied) something.
  Task<absl::StatusOr<bool>> CheckDirection(Jid subscriber, Jid publisher, bool repair,
                                            ConsistencyReport* report);

  RosterStore* store_;
  RosterProcessor* processor_;
};

}  // namespace xc
