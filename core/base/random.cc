#include "core/base/random.h"

#include <openssl/rand.h>

#include <cstdlib>

namespace xc {

std::string RandomBytes(size_t length) {
  std::string out(length, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(length)) != 1) {
    std::abort();  // No entropy is a broken machine, not a recoverable error.
  }
  return out;
}

std::string RandomId(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string raw = RandomBytes(length);
  std::string out(length, 'a');
  for (size_t i = 0; i < length; ++i) {
    out[i] = kAlphabet[static_cast<unsigned char>(raw[i]) % 36];
  }
  return out;
}

}  // namespace xc
