#include "core/base/random.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace xc {
namespace {

// OpenSSL's DRBG, drawn a block at a time per thread: every RAND_bytes call checks for a fork
// with a getpid() system call, and ids are drawn several times per request (a syscall costs
// ~1 us on a paravirtualised VM). A child of fork() starts with a fresh block, never its
// parent's.
constexpr size_t kBlock = 512;

std::atomic<uint64_t> fork_generation{0};
void AfterFork() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

void Draw(unsigned char* out, size_t length) {
  if (RAND_bytes(out, static_cast<int>(length)) != 1) {
    std::abort();  // No entropy is a broken machine, not a recoverable error.
  }
}

struct Block {
  unsigned char bytes[kBlock];
  size_t used = kBlock;
  uint64_t generation = 0;
};

void Fill(unsigned char* out, size_t length) {
  static const bool registered = pthread_atfork(nullptr, nullptr, &AfterFork) == 0;
  (void)registered;
  if (length > kBlock / 4) return Draw(out, length);
  thread_local Block block;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (block.generation != generation || kBlock - block.used < length) {
    Draw(block.bytes, kBlock);
    block.used = 0;
    block.generation = generation;
  }
  std::memcpy(out, block.bytes + block.used, length);
  // Bytes handed out are not kept: a later read of this memory learns nothing of them.
  std::memset(block.bytes + block.used, 0, length);
  block.used += length;
}

}  // namespace

std::string RandomBytes(size_t length) {
  std::string out(length, '\0');
  Fill(reinterpret_cast<unsigned char*>(out.data()), length);
  return out;
}

uint64_t RandomU64() {
  uint64_t v;
  Fill(reinterpret_cast<unsigned char*>(&v), sizeof(v));
  return v;
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
