#include "core/jid/jid.h"

#include <stringprep.h>

#include <cstdlib>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace xc {
namespace {

struct ValidCase {
  std::string input;
  std::string local, domain, resource;
  std::string canonical;
};

class JidValidTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(JidValidTest, ParsesAndCanonicalises) {
  const ValidCase& c = GetParam();
  absl::StatusOr<Jid> jid = Jid::Parse(c.input);
  ASSERT_TRUE(jid.ok()) << c.input << ": " << jid.status();
  EXPECT_EQ(jid->local(), c.local);
  EXPECT_EQ(jid->domain(), c.domain);
  EXPECT_EQ(jid->resource(), c.resource);
  EXPECT_EQ(jid->ToString(), c.canonical);
  // Canonical form is a fixed point.
  absl::StatusOr<Jid> again = Jid::Parse(jid->ToString());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *jid);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc7622, JidValidTest,
    ::testing::Values(
        ValidCase{"juliet@example.com", "juliet", "example.com", "", "juliet@example.com"},
        ValidCase{"juliet@example.com/foo", "juliet", "example.com", "foo",
                  "juliet@example.com/foo"},
        ValidCase{"juliet@example.com/foo bar", "juliet", "example.com", "foo bar",
                  "juliet@example.com/foo bar"},
        ValidCase{"juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar",
                  "juliet@example.com/foo@bar"},
        ValidCase{"foo\\20bar@example.com", "foo\\20bar", "example.com", "",
                  "foo\\20bar@example.com"},
        ValidCase{"fussball@example.com", "fussball", "example.com", "", "fussball@example.com"},
        ValidCase{"fu\xc3\x9f" "ball@example.com", "fussball", "example.com", "",
                  "fussball@example.com"},  // nodeprep folds sharp s
        ValidCase{"\xcf\x80@example.com", "\xcf\x80", "example.com", "", "\xcf\x80@example.com"},
        ValidCase{"\xce\xa3@example.com/foo", "\xcf\x83", "example.com", "foo",
                  "\xcf\x83@example.com/foo"},  // capital sigma lower-cased
        ValidCase{"king@example.com/\xe2\x99\x9a", "king", "example.com", "\xe2\x99\x9a",
                  "king@example.com/\xe2\x99\x9a"},  // symbol allowed in resource
        ValidCase{"example.com", "", "example.com", "", "example.com"},
        ValidCase{"example.com/foobar", "", "example.com", "foobar", "example.com/foobar"},
        ValidCase{"a.example.com/b@example.net", "", "a.example.com", "b@example.net",
                  "a.example.com/b@example.net"},
        ValidCase{"Juliet@D.", "juliet", "d", "", "juliet@d"},  // checklist 14
        ValidCase{"romeo@d/Balcony", "romeo", "d", "Balcony", "romeo@d/Balcony"},  // case kept
        ValidCase{"Romeo@EXAMPLE.NET/Orchard", "romeo", "example.net", "Orchard",
                  "romeo@example.net/Orchard"},
        ValidCase{"user@[::1]", "user", "[::1]", "", "user@[::1]"},
        ValidCase{"user@127.0.0.1", "user", "127.0.0.1", "", "user@127.0.0.1"},
        ValidCase{"user@xn--mnchen-3ya.de", "user", "m\xc3\xbcnchen.de", "",
                  "user@m\xc3\xbcnchen.de"}));

class JidInvalidTest : public ::testing::TestWithParam<std::string> {};

TEST_P(JidInvalidTest, IsRejected) {
  absl::StatusOr<Jid> jid = Jid::Parse(GetParam());
  EXPECT_FALSE(jid.ok()) << "accepted: " << GetParam();
  if (!jid.ok()) {
    EXPECT_EQ(jid.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rfc7622, JidInvalidTest,
    ::testing::Values("\"juliet\"@example.com", "foo bar@example.com", "@example.com/",
                      "@d", "juliet@", "/foobar", "juliet@example.com/", "henry\xe2\x85\xa3@d",
                      "\xe2\x99\x9a@d", "a<b@d", "a>b@d", "a&b@d", "a'b@d", "a:b@d",
                      std::string(1024, 'a') + "@d", "juliet@exa mple.com", "juliet@.com",
                      "juliet@[::1", "juliet@[zz]", "", "juliet@d/ lead", "juliet@d/trail ",
                      std::string("a\0b@d", 5), "juliet@d/" + std::string(1024, 'r'),
                      "\xff\xfe@d"));

TEST(JidTest, BareAndFull) {
  Jid full = *Jid::Parse("romeo@example.net/orchard");
  EXPECT_TRUE(full.is_full());
  EXPECT_EQ(full.Bare().ToString(), "romeo@example.net");
  EXPECT_TRUE(full.Bare().is_bare());
  EXPECT_EQ(full.BareString(), "romeo@example.net");
  absl::StatusOr<Jid> other = full.WithResource("balcony");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->ToString(), "romeo@example.net/balcony");
  EXPECT_FALSE(full.WithResource("").ok());
}

TEST(JidTest, CompareAndHashOnCanonicalForm) {
  absl::flat_hash_set<Jid> set;
  set.insert(*Jid::Parse("Juliet@Example.COM"));
  EXPECT_TRUE(set.contains(*Jid::Parse("juliet@example.com.")));
  EXPECT_FALSE(set.contains(*Jid::Parse("juliet@example.com/r")));
  EXPECT_NE(*Jid::Parse("a@d/R"), *Jid::Parse("a@d/r"));
  EXPECT_LT(*Jid::Parse("a@d"), *Jid::Parse("b@d"));
}

TEST(JidTest, DefaultIsEmpty) {
  Jid jid;
  EXPECT_TRUE(jid.empty());
}

// The ASCII fast path gives libidn's answers: the same output for every printable character,
// and a refusal exactly where the profile refuses.
TEST(JidTest, AsciiFastPathAgreesWithStringprep) {
  for (int c = 1; c < 0x80; ++c) {
    const std::string local = absl::StrCat("a", std::string(1, static_cast<char>(c)), "B");
    char* out = nullptr;
    int rc = stringprep_profile(local.c_str(), &out, "Nodeprep", STRINGPREP_NO_UNASSIGNED);
    absl::StatusOr<std::string> ours = PrepareLocalpart(local);
    EXPECT_EQ(ours.ok(), rc == STRINGPREP_OK) << "localpart char " << c;
    if (ours.ok() && rc == STRINGPREP_OK) EXPECT_EQ(*ours, out) << "localpart char " << c;
    std::free(out);
    out = nullptr;
    const std::string resource = absl::StrCat("r", std::string(1, static_cast<char>(c)), "R");
    rc = stringprep_profile(resource.c_str(), &out, "Resourceprep", STRINGPREP_NO_UNASSIGNED);
    ours = PrepareResourcepart(resource);
    EXPECT_EQ(ours.ok(), rc == STRINGPREP_OK) << "resourcepart char " << c;
    if (ours.ok() && rc == STRINGPREP_OK) EXPECT_EQ(*ours, out) << "resourcepart char " << c;
    std::free(out);
  }
}

}  // namespace
}  // namespace xc
