#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace xc {

// Unpredictable identifiers (stream ids, generated resources, nonces): CSPRNG-backed, thread-safe.
std::string RandomId(size_t length = 16);  // [a-z0-9]
std::string RandomBytes(size_t length);
uint64_t RandomU64();

}  // namespace xc
