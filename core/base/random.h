#pragma once

#include <string>

namespace xc {

// Unpredictable identifiers (stream ids, generated resources, nonces): CSPRNG-backed, thread-safe.
std::string RandomId(size_t length = 16);  // [a-z0-9]
std::string RandomBytes(size_t length);

}  // namespace xc
