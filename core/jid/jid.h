#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/statusor.h"

namespace xc {

// An RFC 7622 address, `[local@]domain[/resource]`, held in canonical form: the localpart
// case-folded (nodeprep), the domain lower-cased as a U-label (nameprep/IDNA, one trailing dot
// stripped), the resource with its case kept (resourceprep). Two Jids are equal exactly when
// their canonical strings are. A value type; cheap to copy for typical JIDs.
class Jid {
 public:
  Jid() = default;

  // Parses and canonicalises. Never throws; an address that cannot be put into shape gives
  // InvalidArgument, which the gateway reports as <jid-malformed/>.
  static absl::StatusOr<Jid> Parse(absl::string_view text);
  static absl::StatusOr<Jid> FromParts(absl::string_view local, absl::string_view domain,
                                       absl::string_view resource);

  const std::string& local() const { return local_; }
  const std::string& domain() const { return domain_; }
  const std::string& resource() const { return resource_; }

  bool empty() const { return domain_.empty(); }
  bool is_bare() const { return resource_.empty(); }
  bool is_full() const { return !resource_.empty(); }

  Jid Bare() const { return Jid(local_, domain_, ""); }
  // The same bare JID with another (already valid) resource.
  absl::StatusOr<Jid> WithResource(absl::string_view resource) const;

  std::string ToString() const;     // full form when a resource is present
  std::string BareString() const;   // local@domain or domain

  friend bool operator==(const Jid& a, const Jid& b) {
    return a.local_ == b.local_ && a.domain_ == b.domain_ && a.resource_ == b.resource_;
  }
  friend bool operator!=(const Jid& a, const Jid& b) { return !(a == b); }
  friend bool operator<(const Jid& a, const Jid& b) {
    return std::tie(a.domain_, a.local_, a.resource_) < std::tie(b.domain_, b.local_, b.resource_);
  }
  template <typename H>
  friend H AbslHashValue(H h, const Jid& j) {
    return H::combine(std::move(h), j.local_, j.domain_, j.resource_);
  }

 private:
  Jid(std::string local, std::string domain, std::string resource)
      : local_(std::move(local)), domain_(std::move(domain)), resource_(std::move(resource)) {}

  std::string local_;
  std::string domain_;
  std::string resource_;
};

// Canonical part preparation, exposed for the bind <resource/> and for tests.
absl::StatusOr<std::string> PrepareLocalpart(absl::string_view local);
absl::StatusOr<std::string> PrepareDomainpart(absl::string_view domain);
absl::StatusOr<std::string> PrepareResourcepart(absl::string_view resource);

}  // namespace xc
