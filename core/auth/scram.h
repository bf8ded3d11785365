#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace xc {

enum class ScramHash { kSha1, kSha256 };

// What the server keeps for a password (RFC 5802 §3): never the password itself.
struct ScramCredentials {
  std::string salt;  // raw bytes
  int iterations = 4096;
  std::string stored_key;  // H(ClientKey)
  std::string server_key;  // HMAC(SaltedPassword, "Server Key")
};

ScramCredentials DeriveScramCredentials(ScramHash hash, absl::string_view password,
                                        absl::string_view salt, int iterations);
// With a fresh random 16-byte salt.
ScramCredentials NewScramCredentials(ScramHash hash, absl::string_view password,
                                     int iterations = 4096);

// PBKDF2-HMAC-SHA-1/-256 of `password` (Hi() of RFC 5802 §2.2): one hash-sized block.
std::string Pbkdf2(ScramHash hash, absl::string_view password, absl::string_view salt,
                   int iterations);

// RFC 4013 SASLprep of a password (what SCRAM clients hash); unpreparable input is returned as is.
std::string SaslPrepPassword(absl::string_view password);

// Checks a plaintext password (SASL PLAIN) against stored credentials, in constant time.
bool VerifyPasswordAgainstScram(ScramHash hash, const ScramCredentials& credentials,
                                absl::string_view password);

// "iterations,base64(salt),base64(stored_key),base64(server_key)" and back.
std::string EncodeScramCredentials(const ScramCredentials& credentials);
bool DecodeScramCredentials(absl::string_view text, ScramCredentials* out);

}  // namespace xc
