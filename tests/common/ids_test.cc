#include "common/ids.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace remex::common {
namespace {

constexpr char kDigits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

TEST(IdsTest, NewTaskIdIsWellFormed) {
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewTaskId();
    EXPECT_EQ(id.size(), 21u) << id;
    EXPECT_EQ(id.find_first_not_of(kDigits), std::string::npos) << id;
    EXPECT_NE(id.front(), '-') << id;
    EXPECT_TRUE(IsWellFormedTaskId(id)) << id;
  }
  EXPECT_EQ(std::strlen(kTaskIdDigits), 62u);  // 62^21 > 2^125
}

TEST(IdsTest, IsWellFormedTaskIdRejectsOtherShapes) {
  EXPECT_TRUE(IsWellFormedTaskId("0123456789abcXYZuvwAz"));
  EXPECT_FALSE(IsWellFormedTaskId(""));
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcXYZuvwA"));    // 20
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcXYZuvwAzz"));  // 22
  EXPECT_FALSE(IsWellFormedTaskId("-123456789abcXYZuvwAz"));
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcXYZuvwA_"));
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcXYZuvwA "));
  EXPECT_FALSE(IsWellFormedTaskId(std::string("0123456789abcXYZuvwA\0", 21)));
  EXPECT_FALSE(IsWellFormedTaskId("../../etc/passwd/abcd"));
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcde"));  // the old shape
}

TEST(IdsTest, IdsAreUniqueAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  absl::Mutex mu;
  absl::flat_hash_set<std::string> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::string> mine;
      mine.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) mine.push_back(NewTaskId());
      absl::MutexLock lock(&mu);
      seen.insert(mine.begin(), mine.end());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
}

// Every position takes every digit about equally often: no fixed prefix,
// no counter, no digit the sampling favours.
TEST(IdsTest, EveryPositionIsSpreadOverEveryDigit) {
  constexpr int kIds = 62 * 400;  // 400 of each digit expected per position
  std::array<std::array<int, 128>, kTaskIdSize> counts{};
  for (int i = 0; i < kIds; ++i) {
    const std::string id = NewTaskId();
    for (size_t p = 0; p < kTaskIdSize; ++p) {
      ++counts[p][static_cast<unsigned char>(id[p])];
    }
  }
  for (size_t p = 0; p < kTaskIdSize; ++p) {
    for (const char* d = kDigits; *d != '\0'; ++d) {
      // Binomial(24800, 1/62): mean 400, sd 19.8; 250..550 is over 7 sd.
      const int n = counts[p][static_cast<unsigned char>(*d)];
      EXPECT_GT(n, 250) << "position " << p << " digit " << *d;
      EXPECT_LT(n, 550) << "position " << p << " digit " << *d;
    }
  }
}

// Consecutive ids of one thread share no structure: they differ in about
// 61/62 of their positions, as independent ids do.
TEST(IdsTest, ConsecutiveIdsAreUnrelated) {
  std::string previous = NewTaskId();
  int same = 0;
  constexpr int kPairs = 10000;
  for (int i = 0; i < kPairs; ++i) {
    const std::string id = NewTaskId();
    for (size_t p = 0; p < kTaskIdSize; ++p) same += id[p] == previous[p];
    previous = id;
  }
  // Expected 21 * 10000 / 62 = 3387 equal positions, sd ~58.
  EXPECT_GT(same, 3000);
  EXPECT_LT(same, 3800);
}

TEST(IdsTest, AForkedChildMakesOtherIdsThanItsParent) {
  NewTaskId();  // the parent's block now holds bytes it will use next
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string id = NewTaskId();
    const bool ok =
        write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  const std::string mine = NewTaskId();
  std::string theirs(kTaskIdSize, '\0');
  size_t got = 0;
  while (got < theirs.size()) {
    const ssize_t n = read(fds[0], theirs.data() + got, theirs.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, kTaskIdSize);
  EXPECT_TRUE(IsWellFormedTaskId(theirs)) << theirs;
  EXPECT_NE(mine, theirs);
}

}  // namespace
}  // namespace remex::common
