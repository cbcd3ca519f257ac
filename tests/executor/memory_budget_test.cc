// The memory budget: its counts, and whether Task::HeldBytes tells the
// truth about what a task holds on the heap.
#include "server/executor/memory_budget.h"

#include <malloc.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/executor/task.h"

namespace remex::executor {
namespace {

TEST(MemoryBudgetTest, AdmitsWhatFitsWithTheRetainedBytes) {
  MemoryBudget budget(1000);
  EXPECT_TRUE(budget.TryAdmit(600, /*retained=*/0));
  EXPECT_FALSE(budget.TryAdmit(500, 0));
  EXPECT_TRUE(budget.TryAdmit(300, 100));
  EXPECT_FALSE(budget.TryAdmit(1, 101));
  EXPECT_FALSE(budget.TryAdmit(2000, 0));  // alone larger than the limit
  EXPECT_EQ(budget.queued(), 900u);
  EXPECT_EQ(budget.live(), 900u);
}

TEST(MemoryBudgetTest, MovesAndReleasesBalance) {
  MemoryBudget budget(1000);
  ASSERT_TRUE(budget.TryAdmit(400, 0));
  budget.Add(100);  // recovered
  budget.MoveToRunning(400);
  EXPECT_EQ(budget.queued(), 100u);
  EXPECT_EQ(budget.running(), 400u);
  budget.MoveToQueued(400);  // its worker died; it runs again
  budget.MoveToRunning(400);
  budget.Release(400, /*running=*/true);
  budget.Release(100, /*running=*/false);
  EXPECT_EQ(budget.live(), 0u);
  // A task that ends before its start is counted reads 0, never less.
  budget.Release(50, /*running=*/true);
  EXPECT_EQ(budget.running(), 0u);
  budget.MoveToRunning(50);
  EXPECT_EQ(budget.live(), 0u);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REMEX_OWN_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define REMEX_OWN_MALLOC 0
#endif
#endif
#ifndef REMEX_OWN_MALLOC
#define REMEX_OWN_MALLOC 1
#endif

size_t HeapInUse() { return mallinfo2().uordblks; }

// Builds `count` tasks with `make_spec` and compares what glibc's heap grew
// by with what Task::HeldBytes says they hold (less the task table's
// share, which is not allocated here).
void ExpectHeldBytesWithin(int count, TaskSpec (*make_spec)(int),
                           double tolerance) {
  if (!REMEX_OWN_MALLOC) GTEST_SKIP() << "a sanitizer owns the heap";
  std::vector<TaskSpec> specs;
  specs.reserve(count);
  for (int i = 0; i < count; ++i) specs.push_back(make_spec(i));
  size_t estimated = 0;
  std::vector<std::shared_ptr<Task>> tasks;
  tasks.reserve(count);
  const size_t before = HeapInUse();
  for (int i = 0; i < count; ++i) {
    estimated += Task::HeldBytes(specs[i]) - 32;
    // A copy, as the durable path makes: counted the same as the original.
    tasks.push_back(
        std::make_shared<Task>(absl::StrCat("id-of-twenty-one-", 1000 + i),
                               i + 1, TaskSpec(specs[i]), absl::Now()));
  }
  const double grown = static_cast<double>(HeapInUse() - before);
  EXPECT_NEAR(grown / static_cast<double>(estimated), 1.0, tolerance)
      << "heap grew " << grown << " bytes; HeldBytes says " << estimated;
}

TEST(HeldBytesTest, CountsLabelsAsTheHeapHoldsThem) {
  ExpectHeldBytesWithin(
      50,
      [](int i) {
        TaskSpec spec;
        spec.function = "echo";
        for (int label = 0; label < 2000; ++label) {
          spec.labels[absl::StrCat("key-", i, "-", label)] =
              absl::StrCat("value ", label);
        }
        return spec;
      },
      0.1);
}

TEST(HeldBytesTest, CountsNestedArgsAsTheHeapHoldsThem) {
  ExpectHeldBytesWithin(
      50,
      [](int i) {
        TaskSpec spec;
        spec.function = "echo";
        Json rows = Json::array();
        for (int row = 0; row < 500; ++row) {
          rows.push_back(Json{{"name", absl::StrCat("row number ", row, i)},
                              {"n", row},
                              {"tags", Json::array({"a", "b", "c"})}});
        }
        spec.args = Json{{"rows", std::move(rows)}};
        return spec;
      },
      0.1);
}

TEST(HeldBytesTest, CountsInputsAndSmallTasks) {
  ExpectHeldBytesWithin(
      200,
      [](int i) {
        TaskSpec spec;
        spec.function = "echo";
        spec.input = std::string(100 + 37 * i, 'x');
        return spec;
      },
      0.1);
}

}  // namespace
}  // namespace remex::executor
