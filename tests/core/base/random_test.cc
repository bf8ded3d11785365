// Random ids and bytes: the requested shape, no repeats, and a forked child never hands out
// what its parent will (the per-thread block of random bytes is not inherited).
#include "core/base/random.h"

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace xc {
namespace {

TEST(RandomTest, IdsHaveTheRequestedLengthAndAlphabetAndDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 5000; ++i) {
    const std::string id = RandomId(12);
    ASSERT_EQ(id.size(), 12u);
    for (char c : id) ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << id;
    ASSERT_TRUE(seen.insert(id).second) << "repeated " << id;
  }
}

TEST(RandomTest, BytesOfAnySizeDoNotRepeat) {
  std::set<std::string> seen;
  for (size_t size : {1u, 8u, 16u, 127u, 128u, 129u, 1000u}) {
    for (int i = 0; i < 200; ++i) {
      const std::string b = RandomBytes(size);
      ASSERT_EQ(b.size(), size);
      if (size >= 8) ASSERT_TRUE(seen.insert(b).second) << "repeated bytes of size " << size;
    }
  }
}

TEST(RandomTest, AForkedChildDoesNotRepeatItsParentsBytes) {
  RandomU64();  // the parent's block now holds bytes it has not handed out yet
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const uint64_t v = RandomU64();
    _exit(write(fds[1], &v, sizeof(v)) == sizeof(v) ? 0 : 1);
  }
  uint64_t from_child = 0;
  ASSERT_EQ(read(fds[0], &from_child, sizeof(from_child)),
            static_cast<ssize_t>(sizeof(from_child)));
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_NE(RandomU64(), from_child) << "the child handed out the parent's next bytes";
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace xc
