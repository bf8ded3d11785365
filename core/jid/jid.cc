#include "core/jid/jid.h"

#include <arpa/inet.h>
#include <idna.h>
#include <stringprep.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace xc {
namespace {

constexpr size_t kMaxPartOctets = 1023;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

bool IsAscii(absl::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

absl::StatusOr<std::string> RunProfile(absl::string_view in, const char* profile,
                                       const char* part) {
  std::string copy(in);  // NUL-terminated for libidn; embedded NULs are caught below.
  if (copy.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(part, " contains NUL"));
  }
  char* out = nullptr;
  int rc = stringprep_profile(copy.c_str(), &out, profile, STRINGPREP_NO_UNASSIGNED);
  std::unique_ptr<char, FreeDeleter> holder(out);
  if (rc != STRINGPREP_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(part, " is not valid under ", profile, ": ", stringprep_strerror(
            static_cast<Stringprep_rc>(rc))));
  }
  return std::string(out);
}

// PRECIS IdentifierClass (RFC 8264) is stricter than nodeprep: it disallows compatibility
// characters (nodeprep's NFKC would silently turn "henryⅣ" into "henryiv") and symbols.
// Full-width forms are width-mapped by PRECIS, so they stay allowed.
absl::Status CheckIdentifierClass(absl::string_view local) {
  if (IsAscii(local)) return absl::OkStatus();
  std::string copy(local);
  size_t n = 0;
  std::unique_ptr<uint32_t, FreeDeleter> ucs(stringprep_utf8_to_ucs4(copy.c_str(), -1, &n));
  if (!ucs) return absl::InvalidArgumentError("localpart is not valid UTF-8");
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp = ucs.get()[i];
    if (cp < 0x80) continue;
    bool symbol = (cp >= 0x2190 && cp <= 0x2BFF) || (cp >= 0x1F000 && cp <= 0x1FAFF) ||
                  (cp >= 0x2600 && cp <= 0x27BF);
    if (symbol) return absl::InvalidArgumentError("localpart contains a symbol");
    bool width_form = cp >= 0xFF01 && cp <= 0xFFEE;
    if (width_form) continue;
    uint32_t one[2] = {cp, 0};
    std::unique_ptr<uint32_t, FreeDeleter> norm(stringprep_ucs4_nfkc_normalize(one, 1));
    if (!norm || norm.get()[0] != cp || norm.get()[1] != 0) {
      return absl::InvalidArgumentError("localpart contains a compatibility character");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLength(absl::string_view part, const char* what) {
  if (part.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (part.size() > kMaxPartOctets) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is longer than 1023 octets"));
  }
  return absl::OkStatus();
}

// ASCII input is what nearly every JID is, and for it the stringprep profiles reduce to a few
// rules, checked here without libidn (the profile run costs a UCS-4 round trip and NFKC):
// nodeprep case-folds and prohibits controls, space and "&'/:<>@ (RFC 3920 Appendix A.5);
// resourceprep keeps case and space and prohibits controls (Appendix B.5).
absl::StatusOr<std::string> AsciiNodeprep(absl::string_view local) {
  std::string out(local);
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' ||
        c == '<' || c == '>' || c == '@') {
      return absl::InvalidArgumentError(
          "localpart is not valid under Nodeprep: forbidden input character");
    }
    c = absl::ascii_tolower(u);
  }
  return out;
}

absl::StatusOr<std::string> AsciiResourceprep(absl::string_view resource) {
  for (unsigned char u : resource) {
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          "resourcepart is not valid under Resourceprep: forbidden input character");
    }
  }
  return std::string(resource);
}

}  // namespace

absl::StatusOr<std::string> PrepareLocalpart(absl::string_view local) {
  if (absl::Status s = CheckLength(local, "localpart"); !s.ok()) return s;
  if (IsAscii(local)) return AsciiNodeprep(local);
  if (absl::Status s = CheckIdentifierClass(local); !s.ok()) return s;
  absl::StatusOr<std::string> out = RunProfile(local, "Nodeprep", "localpart");
  if (!out.ok()) return out.status();
  if (absl::Status s = CheckLength(*out, "localpart"); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> PrepareDomainpart(absl::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (absl::Status s = CheckLength(domain, "domainpart"); !s.ok()) return s;
  if (domain.front() == '[') {
    if (domain.back() != ']') return absl::InvalidArgumentError("unterminated IPv6 literal");
    std::string inner(domain.substr(1, domain.size() - 2));
    in6_addr addr;
    if (inet_pton(AF_INET6, inner.c_str(), &addr) != 1) {
      return absl::InvalidArgumentError("invalid IPv6 literal");
    }
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &addr, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]");
  }
  std::string prepared;
  if (IsAscii(domain)) {
    prepared = absl::AsciiStrToLower(domain);
    if (prepared.find("xn--") != std::string::npos) {
      char* out = nullptr;
      int rc = idna_to_unicode_8z8z(prepared.c_str(), &out, 0);
      std::unique_ptr<char, FreeDeleter> holder(out);
      if (rc != IDNA_SUCCESS) return absl::InvalidArgumentError("invalid A-label in domainpart");
      prepared = out;
    }
  } else {
    absl::StatusOr<std::string> out = RunProfile(domain, "Nameprep", "domainpart");
    if (!out.ok()) return out.status();
    prepared = *std::move(out);
  }
  // Labels: no empty label, and only LDH characters for ASCII labels (RFC 5890 / 1123).
  size_t start = 0;
  while (start <= prepared.size()) {
    size_t dot = prepared.find('.', start);
    if (dot == std::string::npos) dot = prepared.size();
    absl::string_view label(prepared.data() + start, dot - start);
    if (label.empty() || label.size() > 63 * 4) {
      return absl::InvalidArgumentError("empty or over-long label in domainpart");
    }
    for (unsigned char c : label) {
      if (c < 0x80 && !(absl::ascii_isalnum(c) || c == '-' || c == '_')) {
        return absl::InvalidArgumentError("invalid character in domainpart");
      }
    }
    start = dot + 1;
  }
  if (absl::Status s = CheckLength(prepared, "domainpart"); !s.ok()) return s;
  return prepared;
}

absl::StatusOr<std::string> PrepareResourcepart(absl::string_view resource) {
  if (absl::Status s = CheckLength(resource, "resourcepart"); !s.ok()) return s;
  absl::StatusOr<std::string> out = IsAscii(resource)
                                        ? AsciiResourceprep(resource)
                                        : RunProfile(resource, "Resourceprep", "resourcepart");
  if (!out.ok()) return out.status();
  if (absl::Status s = CheckLength(*out, "resourcepart"); !s.ok()) return s;
  // Project decision A20: no leading or trailing space.
  if (out->front() == ' ' || out->back() == ' ') {
    return absl::InvalidArgumentError("resourcepart has a leading or trailing space");
  }
  return out;
}

absl::StatusOr<Jid> Jid::Parse(absl::string_view text) {
  if (text.size() > 3071 + 2) return absl::InvalidArgumentError("JID is longer than 3071 octets");
  absl::string_view rest = text;
  absl::string_view resource;
  bool has_resource = false;
  // RFC 7622 §3.2: the resource is everything after the first '/', then the localpart is
  // everything before the first '@' of what is left.
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    resource = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    has_resource = true;
  }
  absl::string_view local;
  bool has_local = false;
  if (size_t at = rest.find('@'); at != absl::string_view::npos) {
    local = rest.substr(0, at);
    rest = rest.substr(at + 1);
    has_local = true;
  }
  if (has_local && local.empty()) return absl::InvalidArgumentError("empty localpart");
  if (has_resource && resource.empty()) return absl::InvalidArgumentError("empty resourcepart");
  return FromParts(local, rest, resource);
}

absl::StatusOr<Jid> Jid::FromParts(absl::string_view local, absl::string_view domain,
                                   absl::string_view resource) {
  std::string l, r;
  if (!local.empty()) {
    absl::StatusOr<std::string> p = PrepareLocalpart(local);
    if (!p.ok()) return p.status();
    l = *std::move(p);
  }
  absl::StatusOr<std::string> d = PrepareDomainpart(domain);
  if (!d.ok()) return d.status();
  if (!resource.empty()) {
    absl::StatusOr<std::string> p = PrepareResourcepart(resource);
    if (!p.ok()) return p.status();
    r = *std::move(p);
  }
  return Jid(std::move(l), *std::move(d), std::move(r));
}

absl::StatusOr<Jid> Jid::WithResource(absl::string_view resource) const {
  absl::StatusOr<std::string> r = PrepareResourcepart(resource);
  if (!r.ok()) return r.status();
  return Jid(local_, domain_, *std::move(r));
}

std::string Jid::BareString() const {
  if (local_.empty()) return domain_;
  return absl::StrCat(local_, "@", domain_);
}

std::string Jid::ToString() const {
  if (resource_.empty()) return BareString();
  return absl::StrCat(BareString(), "/", resource_);
}

}  // namespace xc
