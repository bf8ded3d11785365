#include "services/roster/roster_consistency.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "proto/xmpp/store/v1/records.pb.h"

namespace xc {
namespace {

using xmpp::store::v1::RosterItemRecord;

Task<absl::StatusOr<RosterItemRecord>> ReadRecord(RosterStore* store, const Jid& user,
                                                  const Jid& contact) {
  absl::StatusOr<std::optional<std::string>> raw =
      co_await store->GetItem(user.BareString(), contact.BareString());
  if (!raw.ok()) co_return raw.status();
  RosterItemRecord record;
  if (raw->has_value() && !record.ParseFromString(**raw)) {
    co_return absl::DataLossError(
        absl::StrCat("unreadable roster entry ", contact.BareString(), " of ", user.BareString()));
  }
  co_return record;
}

// The inbound half that heals a disagreement: `type` from `sender`, processed at `receiver`.
struct Repair {
  Jid receiver;
  Jid sender;
  const char* type;
  std::string problem;
};

}  // namespace

Task<absl::StatusOr<bool>> RosterConsistency::CheckDirection(Jid subscriber, Jid publisher,
                                                             bool repair,
                                                             ConsistencyReport* report) {
  absl::StatusOr<RosterItemRecord> s = co_await ReadRecord(store_, subscriber, publisher);
  if (!s.ok()) co_return s.status();
  absl::StatusOr<RosterItemRecord> p = co_await ReadRecord(store_, publisher, subscriber);
  if (!p.ok()) co_return p.status();
  const std::string sub = subscriber.BareString();
  const std::string pub = publisher.BareString();

  // Consistent pairs: (to, from) subscribed; (pending_out, pending_in) asked; neither.
  std::optional<Repair> fix;
  if (s->to() && !p->from()) {
    // The publisher withdrew (unsubscribed, or removed the item); the subscriber missed it.
    fix = Repair{subscriber, publisher, "unsubscribed",
                 absl::StrCat(sub, " has a subscription to ", pub, ", who does not list it")};
  } else if (!s->to() && p->from()) {
    if (s->pending_out()) {
      // The publisher approved; the approval did not reach the subscriber.
      fix = Repair{subscriber, publisher, "subscribed",
                   absl::StrCat(pub, " approved ", sub, "'s request, which ", sub,
                                " still shows as pending")};
    } else {
      // The subscriber unsubscribed (or removed the item); the publisher missed it.
      fix = Repair{publisher, subscriber, "unsubscribe",
                   absl::StrCat(pub, " lists ", sub, " as subscriber, who is not subscribed")};
    }
  } else if (s->pending_out() && !p->pending_in() && !p->from()) {
    // A stuck `ask`: the request never reached the publisher, or its denial never came back.
    // Ask again rather than drop a request that may never have been seen.
    fix = Repair{publisher, subscriber, "subscribe",
                 absl::StrCat(sub, " has a request pending to ", pub, ", who has none from ", sub)};
  } else if (p->pending_in() && !s->pending_out() && !s->to()) {
    // The subscriber cancelled its request; the publisher missed the cancellation.
    fix = Repair{publisher, subscriber, "unsubscribe",
                 absl::StrCat(pub, " holds a request from ", sub, ", who no longer asks")};
  }
  if (!fix) co_return false;

  RosterFinding finding;
  finding.user = sub;
  finding.contact = pub;
  finding.problem = fix->problem;
  finding.repair = absl::StrCat(fix->type, " from ", fix->sender.BareString(), " processed at ",
                                fix->receiver.BareString());
  if (repair) {
    XmlElement stanza("presence", std::string(kNsClient));
    stanza.SetAttribute("type", fix->type);
    absl::StatusOr<RosterOutput> out =
        co_await processor_->HandleInbound(fix->receiver, fix->sender, stanza);
    if (!out.ok()) co_return out.status();
    for (auto& effect : out->effects) report->output.effects.push_back(std::move(effect));
    for (auto& t : out->transitions) report->output.transitions.push_back(std::move(t));
    report->output.requests_stored += out->requests_stored;
    report->output.requests_cleared += out->requests_cleared;
    finding.repaired = true;
  }
  report->findings.push_back(std::move(finding));
  co_return true;
}

Task<absl::StatusOr<ConsistencyReport>> RosterConsistency::Check(Jid user, bool repair) {
  ConsistencyReport report;
  absl::StatusOr<StoredRoster> roster = co_await store_->ReadRoster(user.BareString());
  if (!roster.ok()) co_return roster.status();
  for (const auto& [contact_text, unused] : roster->items) {
    absl::StatusOr<Jid> contact = Jid::Parse(contact_text);
    if (!contact.ok() || contact->local().empty()) continue;
    absl::StatusOr<bool> exists = co_await store_->UserExists(contact->BareString());
    if (!exists.ok()) co_return exists.status();
    if (!*exists) continue;  // an account that is gone, or not served here: nothing to pair
    ++report.contacts_checked;
    // A repair can expose the next disagreement (e.g. a withdrawn subscription that also left
    // a request behind); a few rounds settle any pair, each round moving its state forward.
    for (int round = 0; round < 4; ++round) {
      bool found = false;
      const std::vector<std::pair<Jid, Jid>> directions = {{user, *contact}, {*contact, user}};
      for (const auto& [a, b] : directions) {
        absl::StatusOr<bool> f = co_await CheckDirection(a, b, repair, &report);
        if (!f.ok()) co_return f.status();
        found = found || *f;
      }
      if (!found || !repair) break;
    }
  }
  co_return report;
}

}  // namespace xc
