#include "core/auth/scram.h"

#include <stringprep.h>

#include <cstdlib>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/random.h"

namespace xc {
namespace {

const EVP_MD* Md(ScramHash hash) { return hash == ScramHash::kSha1 ? EVP_sha1() : EVP_sha256(); }

std::string Hmac(ScramHash hash, absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(Md(hash), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Digest(ScramHash hash, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, Md(hash), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string SaltedPassword(ScramHash hash, absl::string_view password, absl::string_view salt,
                           int iterations) {
  std::string out(static_cast<size_t>(EVP_MD_size(Md(hash))), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, Md(hash),
                    static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

std::string SaslPrepPassword(absl::string_view password) {
  std::string copy(password);
  char* out = nullptr;
  if (stringprep_profile(copy.c_str(), &out, "SASLprep", static_cast<Stringprep_profile_flags>(0)) !=
      STRINGPREP_OK) {
    std::free(out);
    return copy;  // not preparable: used as given (both sides then agree on the raw bytes)
  }
  std::string prepared(out);
  std::free(out);
  return prepared;
}

ScramCredentials DeriveScramCredentials(ScramHash hash, absl::string_view password,
                                        absl::string_view salt, int iterations) {
  std::string salted = SaltedPassword(hash, SaslPrepPassword(password), salt, iterations);
  ScramCredentials c;
  c.salt = std::string(salt);
  c.iterations = iterations;
  c.stored_key = Digest(hash, Hmac(hash, salted, "Client Key"));
  c.server_key = Hmac(hash, salted, "Server Key");
  return c;
}

ScramCredentials NewScramCredentials(ScramHash hash, absl::string_view password, int iterations) {
  return DeriveScramCredentials(hash, password, RandomBytes(16), iterations);
}

bool VerifyPasswordAgainstScram(ScramHash hash, const ScramCredentials& credentials,
                                absl::string_view password) {
  ScramCredentials derived =
      DeriveScramCredentials(hash, password, credentials.salt, credentials.iterations);
  return derived.stored_key.size() == credentials.stored_key.size() &&
         CRYPTO_memcmp(derived.stored_key.data(), credentials.stored_key.data(),
                       derived.stored_key.size()) == 0;
}

std::string EncodeScramCredentials(const ScramCredentials& c) {
  return absl::StrCat(c.iterations, ",", absl::Base64Escape(c.salt), ",",
                      absl::Base64Escape(c.stored_key), ",", absl::Base64Escape(c.server_key));
}

bool DecodeScramCredentials(absl::string_view text, ScramCredentials* out) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  if (parts.size() != 4) return false;
  ScramCredentials c;
  if (!absl::SimpleAtoi(parts[0], &c.iterations) || c.iterations < 1) return false;
  if (!absl::Base64Unescape(parts[1], &c.salt) || !absl::Base64Unescape(parts[2], &c.stored_key) ||
      !absl::Base64Unescape(parts[3], &c.server_key)) {
    return false;
  }
  *out = std::move(c);
  return true;
}

}  // namespace xc
