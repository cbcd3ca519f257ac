#include "server/executor/task_table.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace remex::executor {
namespace {

using ::testing::UnorderedElementsAre;

const absl::Time kEpoch = absl::FromUnixSeconds(1'700'000'000);

// A fresh list position for every task made here, as the executor gives.
uint64_t NextListPosition() {
  static std::atomic<uint64_t> last{0};
  return last.fetch_add(1) + 1;
}

std::shared_ptr<Task> NewTask(const std::string& id,
                              uint64_t list_position = NextListPosition()) {
  return std::make_shared<Task>(id, list_position,
                                std::make_shared<const TaskSpec>(), kEpoch);
}

// Inserts a task with `id` and returns it.
std::shared_ptr<Task> Add(TaskTable& table, const std::string& id,
                          uint64_t list_position = NextListPosition()) {
  std::shared_ptr<Task> task = NewTask(id, list_position);
  table.Insert(task);
  return task;
}

std::vector<std::string> IdsIn(const TaskTable& table) {
  std::vector<std::string> ids;
  table.ForEach(
      [&ids](const std::shared_ptr<Task>& task) { ids.push_back(task->id()); });
  return ids;
}

TEST(TaskTableTest, InsertFindErase) {
  TaskTable table(RetentionLimits{});
  EXPECT_EQ(table.Find("a"), nullptr);
  const std::shared_ptr<Task> a = Add(table, "a");
  const std::shared_ptr<Task> b = Add(table, "b");
  EXPECT_EQ(table.Find("a"), a);
  EXPECT_EQ(table.Find("b"), b);
  EXPECT_EQ(table.Find("c"), nullptr);

  EXPECT_EQ(table.Erase("a"), a);
  EXPECT_EQ(table.Find("a"), nullptr);
  EXPECT_EQ(table.Erase("a"), nullptr);
  EXPECT_EQ(table.Find("b"), b);
  EXPECT_THAT(IdsIn(table), UnorderedElementsAre("b"));
}

std::vector<std::string> IdsOf(const TaskTable::Matches& matches) {
  std::vector<std::string> ids;
  for (const auto& task : matches.tasks) ids.push_back(task->id());
  return ids;
}

std::vector<uint64_t> PositionsOf(const TaskTable::Matches& matches) {
  std::vector<uint64_t> positions;
  for (const auto& task : matches.tasks) {
    positions.push_back(task->list_position());
  }
  return positions;
}

TEST(TaskTableTest, FirstMatchesAfterPagesInListOrderAcrossShards) {
  TaskTable table(RetentionLimits{});
  // Ids in another order than the list positions (37 is prime to 200, so
  // each position 1..200 is used once), spread over every shard, inserted
  // out of order.
  for (int i = 199; i >= 0; --i) {
    Add(table, absl::StrFormat("id-%03d", i), (i * 37) % 200 + 1);
  }
  const auto all = [](const Task&) { return true; };

  EXPECT_THAT(PositionsOf(table.FirstMatchesAfter(0, 3, all)),
              ::testing::ElementsAre(1, 2, 3));
  EXPECT_THAT(IdsOf(table.FirstMatchesAfter(0, 1, all)),
              ::testing::ElementsAre("id-000"));  // (0 * 37) % 200 + 1
  EXPECT_THAT(PositionsOf(table.FirstMatchesAfter(2, 2, all)),
              ::testing::ElementsAre(3, 4));
  EXPECT_TRUE(table.FirstMatchesAfter(200, 5, all).tasks.empty());
  EXPECT_FALSE(table.FirstMatchesAfter(200, 5, all).resume_after.has_value());

  const auto ends_in_7 = [](const Task& task) {
    return task.list_position() % 10 == 7;
  };
  EXPECT_THAT(PositionsOf(table.FirstMatchesAfter(10, 3, ends_in_7)),
              ::testing::ElementsAre(17, 27, 37));
  EXPECT_EQ(table.FirstMatchesAfter(10, 3, ends_in_7).resume_after, 37u);
}

TEST(TaskTableTest, FindAndEraseByIdWhateverTheListOrder) {
  TaskTable table(RetentionLimits{});
  const std::shared_ptr<Task> late = Add(table, "a", 1000);
  const std::shared_ptr<Task> early = Add(table, "b", 10);
  EXPECT_EQ(table.Find("a"), late);
  EXPECT_EQ(table.Find("b"), early);
  // Same id again (another position): ignored.
  Add(table, "a", 5);
  EXPECT_EQ(table.Find("a"), late);
  EXPECT_THAT(PositionsOf(table.FirstMatchesAfter(
                  0, 10, [](const Task&) { return true; })),
              ::testing::ElementsAre(10, 1000));
  EXPECT_EQ(table.Erase("b"), early);
  EXPECT_THAT(
      IdsOf(table.FirstMatchesAfter(0, 10, [](const Task&) { return true; })),
      ::testing::ElementsAre("a"));
}

TEST(TaskTableTest, FirstMatchesAfterBoundsTheWalkOfASparseFilter) {
  TaskTable table(RetentionLimits{});
  // Enough tasks that every shard holds more than it visits per call.
  constexpr int kTasks = 40'000;
  for (int i = 0; i < kTasks; ++i) {
    Add(table, absl::StrFormat("id-%05d", i), static_cast<uint64_t>(i + 1));
  }
  const std::set<std::string> wanted = {"id-00007", "id-20000", "id-39999"};
  int visits = 0;
  const auto sparse = [&](const Task& task) {
    ++visits;
    return wanted.contains(task.id());
  };

  std::vector<std::string> found;
  uint64_t after = 0;
  int calls = 0;
  while (true) {
    ASSERT_LT(++calls, kTasks) << "the walk does not move on";
    visits = 0;
    const TaskTable::Matches matches =
        table.FirstMatchesAfter(after, 5, sparse);
    EXPECT_LE(visits, 32 * static_cast<int>(TaskTable::kScanPerShard));
    for (const std::string& id : IdsOf(matches)) found.push_back(id);
    if (!matches.resume_after.has_value()) break;
    EXPECT_GT(*matches.resume_after, after);
    after = *matches.resume_after;
  }
  EXPECT_THAT(found, ::testing::ElementsAreArray(wanted));
  EXPECT_GT(calls, 2);
}

TEST(TaskTableTest, ForEachVisitsEveryTask) {
  TaskTable table(RetentionLimits{});
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(absl::StrCat("task-", i));
    Add(table, ids.back());
  }
  EXPECT_THAT(IdsIn(table), ::testing::UnorderedElementsAreArray(ids));
}

TEST(TaskTableTest, RetainCountsTasksAndBytes) {
  TaskTable table(RetentionLimits{});
  const std::shared_ptr<Task> a = Add(table, "a");
  const std::shared_ptr<Task> b = Add(table, "b");
  table.Retain(a, kEpoch + absl::Hours(1), 100);
  table.Retain(b, kEpoch + absl::Hours(1), 50);
  EXPECT_EQ(table.retained_tasks(), 2u);
  EXPECT_EQ(table.retained_bytes(), 150u);

  // A second Retain of the same task counts nothing twice.
  table.Retain(a, kEpoch + absl::Hours(2), 999);
  EXPECT_EQ(table.retained_tasks(), 2u);
  EXPECT_EQ(table.retained_bytes(), 150u);

  // Erase takes a retained task out of the budget.
  EXPECT_EQ(table.Erase("a"), a);
  EXPECT_EQ(table.retained_tasks(), 1u);
  EXPECT_EQ(table.retained_bytes(), 50u);
}

TEST(TaskTableTest, RetainOfATaskNotInTheTableIsIgnored) {
  TaskTable table(RetentionLimits{});
  const std::shared_ptr<Task> gone = Add(table, "gone");
  table.Erase("gone");
  table.Retain(gone, kEpoch + absl::Hours(1), 10);
  table.Retain(NewTask("never"), kEpoch + absl::Hours(1), 10);
  EXPECT_EQ(table.retained_tasks(), 0u);
  EXPECT_EQ(table.retained_bytes(), 0u);

  // Nor is one whose id is now held by another task.
  const std::shared_ptr<Task> impostor = NewTask("x");
  Add(table, "x");
  table.Retain(impostor, kEpoch + absl::Hours(1), 10);
  EXPECT_EQ(table.retained_tasks(), 0u);
}

TEST(TaskTableTest, CountBudgetEvictsTheTaskClosestToExpiry) {
  TaskTable table(RetentionLimits{.max_tasks = 2});
  const std::shared_ptr<Task> a = Add(table, "a");
  const std::shared_ptr<Task> b = Add(table, "b");
  const std::shared_ptr<Task> c = Add(table, "c");
  table.Retain(a, kEpoch + absl::Hours(3), 1);
  table.Retain(b, kEpoch + absl::Hours(1), 1);
  EXPECT_EQ(table.retained_tasks(), 2u);
  table.Retain(c, kEpoch + absl::Hours(2), 1);
  EXPECT_EQ(table.retained_tasks(), 2u);
  EXPECT_EQ(table.Find("b"), nullptr);
  EXPECT_EQ(table.Find("a"), a);
  EXPECT_EQ(table.Find("c"), c);
  EXPECT_EQ(table.retained_bytes(), 2u);
}

TEST(TaskTableTest, ByteBudgetEvictsUntilUnderIt) {
  TaskTable table(RetentionLimits{.max_bytes = 100});
  const std::shared_ptr<Task> a = Add(table, "a");
  const std::shared_ptr<Task> b = Add(table, "b");
  const std::shared_ptr<Task> c = Add(table, "c");
  const std::shared_ptr<Task> d = Add(table, "d");
  table.Retain(a, kEpoch + absl::Hours(1), 40);
  table.Retain(b, kEpoch + absl::Hours(2), 40);
  table.Retain(c, kEpoch + absl::Hours(3), 20);
  EXPECT_EQ(table.retained_bytes(), 100u);  // at the limit: all kept
  EXPECT_EQ(table.retained_tasks(), 3u);

  // 170 bytes: a and b (the two closest to expiry) must go to get under 100.
  table.Retain(d, kEpoch + absl::Hours(4), 70);
  EXPECT_EQ(table.Find("a"), nullptr);
  EXPECT_EQ(table.Find("b"), nullptr);
  EXPECT_EQ(table.Find("c"), c);
  EXPECT_EQ(table.Find("d"), d);
  EXPECT_EQ(table.retained_bytes(), 90u);
  EXPECT_EQ(table.retained_tasks(), 2u);
}

TEST(TaskTableTest, TaskLargerThanTheByteBudgetIsNotKept) {
  TaskTable table(RetentionLimits{.max_bytes = 10});
  const std::shared_ptr<Task> huge = Add(table, "huge");
  table.Retain(huge, kEpoch + absl::Hours(1), 50);
  EXPECT_EQ(table.Find("huge"), nullptr);
  EXPECT_EQ(table.retained_tasks(), 0u);
  EXPECT_EQ(table.retained_bytes(), 0u);
}

TEST(TaskTableTest, BudgetNeverEvictsTasksThatAreNotRetained) {
  TaskTable table(RetentionLimits{.max_tasks = 1});
  for (const char* id : {"r1", "r2", "r3"}) Add(table, id);
  const std::shared_ptr<Task> done1 = Add(table, "done1");
  const std::shared_ptr<Task> done2 = Add(table, "done2");
  table.Retain(done1, kEpoch + absl::Hours(1), 1);
  table.Retain(done2, kEpoch + absl::Hours(2), 1);
  EXPECT_THAT(IdsIn(table), UnorderedElementsAre("r1", "r2", "r3", "done2"));
}

TEST(TaskTableTest, EvictExpiredForgetsOnlyTasksWhoseTtlPassed) {
  TaskTable table(RetentionLimits{});
  const std::shared_ptr<Task> t1 = Add(table, "t1");
  const std::shared_ptr<Task> t2 = Add(table, "t2");
  const std::shared_ptr<Task> t3 = Add(table, "t3");
  Add(table, "running");
  table.Retain(t1, kEpoch + absl::Seconds(1), 10);
  table.Retain(t2, kEpoch + absl::Seconds(2), 10);
  table.Retain(t3, kEpoch + absl::Seconds(3), 10);

  table.EvictExpired(kEpoch);
  EXPECT_EQ(table.retained_tasks(), 3u);

  table.EvictExpired(kEpoch + absl::Seconds(2));  // expiry <= now goes
  EXPECT_THAT(IdsIn(table), UnorderedElementsAre("t3", "running"));
  EXPECT_EQ(table.retained_tasks(), 1u);
  EXPECT_EQ(table.retained_bytes(), 10u);

  table.EvictExpired(absl::InfiniteFuture());
  EXPECT_THAT(IdsIn(table), UnorderedElementsAre("running"));
  EXPECT_EQ(table.retained_bytes(), 0u);
}

TEST(TaskTableTest, EqualExpiriesAreAllKeptAndAllEvicted) {
  TaskTable table(RetentionLimits{});
  const absl::Time expiry = kEpoch + absl::Seconds(5);
  for (int i = 0; i < 10; ++i) {
    table.Retain(Add(table, absl::StrCat("t", i)), expiry, 1);
  }
  EXPECT_EQ(table.retained_tasks(), 10u);
  table.EvictExpired(expiry);
  EXPECT_EQ(table.retained_tasks(), 0u);
  EXPECT_TRUE(IdsIn(table).empty());
}

TEST(TaskTableTest, ConcurrentUse) {
  TaskTable table(RetentionLimits{.max_tasks = 500});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&table, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string id = absl::StrCat(t, "-", i);
        std::shared_ptr<Task> task = Add(table, id);
        EXPECT_EQ(table.Find(id), task);
        if (i % 3 == 0) {
          table.Erase(id);
        } else {
          table.Retain(task, kEpoch + absl::Milliseconds(i), 8);
        }
        if (i % 100 == 0) table.EvictExpired(kEpoch + absl::Milliseconds(i));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_LE(table.retained_tasks(), 500u);
  EXPECT_EQ(table.retained_bytes(), table.retained_tasks() * 8);
  EXPECT_EQ(IdsIn(table).size(), table.retained_tasks());
}

}  // namespace
}  // namespace remex::executor
