#include "common/ids.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace remex::common {
namespace {

TEST(IdsTest, NewTaskIdIsWellFormed) {
  for (int i = 0; i < 100; ++i) {
    const std::string id = NewTaskId();
    EXPECT_EQ(id.size(), 15u) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdefghijklmnopqrstuv"),
              std::string::npos)
        << id;
    EXPECT_TRUE(IsWellFormedTaskId(id)) << id;
  }
}

TEST(IdsTest, IsWellFormedTaskIdRejectsOtherShapes) {
  EXPECT_TRUE(IsWellFormedTaskId("0123456789abcuv"));
  EXPECT_FALSE(IsWellFormedTaskId(""));
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcd"));    // 14
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcdef"));  // 16
  EXPECT_FALSE(IsWellFormedTaskId("0123456789ABCDE"));   // upper
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcdw"));   // 'w'
  EXPECT_FALSE(IsWellFormedTaskId("0123456789abcd "));
  EXPECT_FALSE(IsWellFormedTaskId(std::string("0123456789abcd\0", 15)));
  EXPECT_FALSE(IsWellFormedTaskId("../../etc/passw"));
}

TEST(IdsTest, IdsFitTheInlineStringBuffer) {
  // Copying an id must not allocate (see kTaskIdSize).
  EXPECT_LE(NewTaskId().size(), std::string().capacity());
}

TEST(IdsTest, IdsAreUniqueAndOrderedWithinAThread) {
  std::string previous = NewTaskId();
  absl::flat_hash_set<std::string> seen = {previous};
  for (int i = 0; i < 100000; ++i) {
    std::string id = NewTaskId();
    ASSERT_LT(previous, id);
    // One process: one instance prefix.
    ASSERT_EQ(id.substr(0, 5), previous.substr(0, 5));
    ASSERT_TRUE(seen.insert(id).second) << id;
    previous = std::move(id);
  }
}

TEST(IdsTest, IdsAreUniqueAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  absl::Mutex mu;
  absl::flat_hash_set<std::string> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::string> mine;
      mine.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) mine.push_back(NewTaskId());
      // Each thread sees its own ids in increasing order too.
      for (int i = 1; i < kPerThread; ++i) EXPECT_LT(mine[i - 1], mine[i]);
      absl::MutexLock lock(&mu);
      seen.insert(mine.begin(), mine.end());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace remex::common
