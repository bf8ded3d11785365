// SCRAM credentials: PBKDF2 against published vectors and OpenSSL's generic implementation,
// and SASL PLAIN checks against stored salted keys.
#include "core/auth/scram.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace xc {
namespace {

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

TEST(Pbkdf2Test, Rfc6070Sha1Vectors) {
  EXPECT_EQ(Hex(Pbkdf2(ScramHash::kSha1, "password", "salt", 1)),
            "0c60c80f961f0e71f3a9b524af6012062fe037a6");
  EXPECT_EQ(Hex(Pbkdf2(ScramHash::kSha1, "password", "salt", 2)),
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
  EXPECT_EQ(Hex(Pbkdf2(ScramHash::kSha1, "password", "salt", 4096)),
            "4b007901b765489abead49d926f721d065a429c1");
}

TEST(Pbkdf2Test, Rfc7914Sha256Vector) {
  // RFC 7914 §11, first 32 bytes (the first PBKDF2 block).
  EXPECT_EQ(Hex(Pbkdf2(ScramHash::kSha256, "passwd", "salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
}

TEST(Pbkdf2Test, AgreesWithOpenSslForLongAndShortKeys) {
  for (const std::string password :
       {std::string(""), std::string("pencil"), std::string(64, 'k'), std::string(65, 'k'),
        std::string(200, '\xe9')}) {
    for (int iterations : {1, 2, 3, 4096}) {
      for (ScramHash hash : {ScramHash::kSha1, ScramHash::kSha256}) {
        const EVP_MD* md = hash == ScramHash::kSha1 ? EVP_sha1() : EVP_sha256();
        std::string expected(static_cast<size_t>(EVP_MD_size(md)), '\0');
        const std::string salt = "0123456789abcdef";
        PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()),
                          static_cast<int>(salt.size()), iterations, md,
                          static_cast<int>(expected.size()),
                          reinterpret_cast<unsigned char*>(expected.data()));
        EXPECT_EQ(Hex(Pbkdf2(hash, password, salt, iterations)), Hex(expected))
            << password.size() << " bytes, " << iterations << " iterations";
      }
    }
  }
}

TEST(ScramCredentialsTest, Rfc7677StoredKeyAndPlainVerification) {
  // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096.
  std::string salt;
  ASSERT_TRUE(absl::Base64Unescape("W22ZaJ0SNY7soEsUEjb6gQ==", &salt));
  ScramCredentials c = DeriveScramCredentials(ScramHash::kSha256, "pencil", salt, 4096);
  EXPECT_TRUE(VerifyPasswordAgainstScram(ScramHash::kSha256, c, "pencil"));
  EXPECT_FALSE(VerifyPasswordAgainstScram(ScramHash::kSha256, c, "pencil2"));
  // The exchange's ServerSignature (v=...) is HMAC(ServerKey, AuthMessage).
  const std::string auth_message =
      "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)"
      "hNlF$k0";
  unsigned char sig[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), c.server_key.data(), static_cast<int>(c.server_key.size()),
       reinterpret_cast<const unsigned char*>(auth_message.data()), auth_message.size(), sig,
       &len);
  EXPECT_EQ(absl::Base64Escape(std::string(reinterpret_cast<char*>(sig), len)),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST(ScramCredentialsTest, EncodeDecodeRoundTrip) {
  ScramCredentials c = NewScramCredentials(ScramHash::kSha1, "secret", 4096);
  ScramCredentials back;
  ASSERT_TRUE(DecodeScramCredentials(EncodeScramCredentials(c), &back));
  EXPECT_EQ(back.salt, c.salt);
  EXPECT_EQ(back.iterations, 4096);
  EXPECT_EQ(back.stored_key, c.stored_key);
  EXPECT_EQ(back.server_key, c.server_key);
  EXPECT_FALSE(DecodeScramCredentials("4096,nope", &back));
}

}  // namespace
}  // namespace xc
