// The executor with a durable store (FakeStore, which answers on its own
// thread like the PostgreSQL store): answers wait for commits, ends are
// committed before anyone hears of them, a restart re-queues what was
// unfinished, a drain hands queued tasks back, and a store that is down
// refuses submits without leaking a slot.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/executor/executor.h"
#include "server/executor/function_registry.h"
#include "server/executor/store.h"
#include "server/functions/builtin_functions.h"
#include "tests/executor/executor_test_util.h"
#include "tests/executor/fake_store.h"
#include "tests/testing/wait.h"

namespace remex::executor {
namespace {

using ::remex::executor::testing::AwaitTerminal;
using ::remex::executor::testing::FakeStore;
using ::remex::executor::testing::MakeSpec;
using ::remex::executor::testing::ThreadPoolConfig;
using ::remex::testing::kWaitTimeout;
using ::remex::testing::WaitUntil;

// Counts what the executor tells the store's observer. Thread-safe.
class CountingStoreObserver final : public StoreObserver {
 public:
  void OnCommit(size_t, absl::Duration) override {}
  void OnDatabaseError(absl::string_view) override {}
  void OnReconnect() override {}
  void OnRequeued(int64_t tasks) override { requeued_ += tasks; }
  void OnClaimLag(absl::Duration lag) override {
    absl::MutexLock lock(&mu_);
    claim_lags_.push_back(lag);
  }
  void OnCanCommit(bool) override {}
  void OnLiveReplicas(int64_t) override {}
  void OnReplicaLost(absl::Duration, int64_t) override {}

  int64_t requeued() const { return requeued_.load(); }
  std::vector<absl::Duration> claim_lags() const {
    absl::MutexLock lock(&mu_);
    return claim_lags_;
  }

 private:
  std::atomic<int64_t> requeued_{0};
  mutable absl::Mutex mu_;
  std::vector<absl::Duration> claim_lags_ ABSL_GUARDED_BY(mu_);
};

class DurableExecutorTest : public ::testing::Test {
 protected:
  DurableExecutorTest() {
    EXPECT_TRUE(functions::RegisterBuiltinFunctions({}, registry_).ok());
  }
  ~DurableExecutorTest() override { executor_.reset(); }

  void Start(int workers = 2) {
    ExecutorOptions options;
    options.pools.push_back(ThreadPoolConfig("default", workers));
    options.store = &store_;
    options.store_observer = &observer_;
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(std::move(options), registry_);
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = *std::move(executor);
  }

  // A row as a crashed server would have left it.
  TaskSnapshot Row(const std::string& id, uint64_t position, TaskState state,
                   int32_t attempt, int32_t max_attempts) {
    TaskSpec spec = MakeSpec("echo", {{"n", position}});
    spec.pool = "default";
    spec.max_attempts = max_attempts;
    TaskSnapshot row;
    row.id = id;
    row.list_position = position;
    row.spec = std::make_shared<const TaskSpec>(std::move(spec));
    row.state = state;
    row.attempt = attempt;
    row.created_at = absl::Now();
    return row;
  }

  FunctionRegistry registry_;
  FakeStore store_;  // outlives the executor
  CountingStoreObserver observer_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(DurableExecutorTest, SubmitAnswersOnlyOnceTheTaskIsCommitted) {
  Start();
  store_.Hold();
  absl::Notification answered;
  absl::StatusOr<TaskSnapshot> answer;
  executor_->SubmitAsync(MakeSpec("echo"), {}, nullptr, 0,
                         [&](absl::StatusOr<TaskSnapshot> task) {
                           answer = std::move(task);
                           answered.Notify();
                         });
  EXPECT_FALSE(answered.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  EXPECT_EQ(executor_->active_tasks(), 1);  // a drain waits for it
  store_.Release();
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(kWaitTimeout));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_GT(answer->list_position, 0u);
  // The row was there before the answer.
  EXPECT_TRUE(store_.Row(answer->id).ok());
  // Runnable once committed.
  EXPECT_EQ(observer_.claim_lags().size(), 1u);
}

TEST_F(DurableExecutorTest, AnEndIsCommittedBeforeAnyWaiterHearsOfIt) {
  Start();
  absl::StatusOr<TaskSnapshot> task =
      executor_->Submit(MakeSpec("sleep", {{"ms", 200}}));
  ASSERT_TRUE(task.ok()) << task.status();
  // Held once the start is committed: what waits then is the end.
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<TaskSnapshot> row = store_.Row(task->id);
    return row.ok() && row->state == TaskState::kRunning;
  }));
  store_.Hold();
  absl::Notification told;
  absl::StatusOr<TaskSnapshot> row_when_told;
  ASSERT_TRUE(executor_
                  ->OnDone(task->id,
                           [&](const TaskSnapshot&) {
                             row_when_told = store_.Row(task->id);
                             told.Notify();
                           })
                  .ok());
  ASSERT_TRUE(WaitUntil([&] { return store_.pending() > 0; }));  // it ended
  EXPECT_FALSE(told.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  EXPECT_EQ(executor_->active_tasks(), 1);  // until the end is committed
  // Nor does a Get (Await's first step): it shows the task as committed.
  absl::StatusOr<TaskSnapshot> got = executor_->Get(task->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, TaskState::kRunning);
  EXPECT_EQ(got->outcome, nullptr);
  EXPECT_EQ(got->finished_at, absl::InfinitePast());
  store_.Release();
  ASSERT_TRUE(told.WaitForNotificationWithTimeout(kWaitTimeout));
  ASSERT_TRUE(row_when_told.ok());
  EXPECT_EQ(row_when_told->state, TaskState::kSucceeded);
}

TEST_F(DurableExecutorTest, ARestartRunsQueuedTasksAndRequeuesRunningOnes) {
  store_.Put(Row("queued", 1, TaskState::kQueued, 0, 1));
  store_.Put(Row("running", 2, TaskState::kRunning, 1, 2));
  store_.Put(Row("spent", 3, TaskState::kRunning, 2, 2));
  TaskSnapshot done = Row("done", 4, TaskState::kSucceeded, 1, 1);
  done.outcome = std::make_shared<TaskOutcome>();
  store_.Put(done);
  Start();

  absl::StatusOr<TaskSnapshot> queued = AwaitTerminal(*executor_, "queued");
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->state, TaskState::kSucceeded);
  EXPECT_EQ(queued->attempt, 1);
  absl::StatusOr<TaskSnapshot> running = AwaitTerminal(*executor_, "running");
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state, TaskState::kSucceeded);
  EXPECT_EQ(running->attempt, 2);  // its second run
  absl::StatusOr<TaskSnapshot> spent = AwaitTerminal(*executor_, "spent");
  ASSERT_TRUE(spent.ok()) << spent.status();
  EXPECT_EQ(spent->state, TaskState::kWorkerLost);
  EXPECT_EQ(spent->outcome->error.code, absl::StatusCode::kAborted);
  // Committed, every one; and a task that had ended is read from the store.
  for (const char* id : {"queued", "running", "spent"}) {
    EXPECT_TRUE(WaitUntil(
        [&] {
          absl::StatusOr<TaskSnapshot> row = store_.Row(id);
          return row.ok() && IsTerminal(row->state);
        },
        kWaitTimeout))
        << id;
  }
  absl::StatusOr<TaskSnapshot> old = executor_->Get("done");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->state, TaskState::kSucceeded);
  EXPECT_EQ(executor_->Get("never").status().code(),
            absl::StatusCode::kNotFound);
  // One queued again; the queued one waited since its row was made.
  EXPECT_EQ(observer_.requeued(), 1);
  EXPECT_EQ(observer_.claim_lags().size(), 1u);
}

TEST_F(DurableExecutorTest, ADrainHandsQueuedTasksBackInsteadOfCancelling) {
  Start(/*workers=*/1);
  absl::StatusOr<TaskSnapshot> blocker =
      executor_->Submit(MakeSpec("sleep", {{"ms", 300}}));
  ASSERT_TRUE(blocker.ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return executor_->Get(blocker->id)->state == TaskState::kRunning; },
      kWaitTimeout));
  absl::StatusOr<TaskSnapshot> waiting = executor_->Submit(MakeSpec("echo"));
  ASSERT_TRUE(waiting.ok());
  executor_->StartDrain();
  EXPECT_TRUE(executor_->WaitUntilIdle(absl::Now() + kWaitTimeout));
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<TaskSnapshot> row = store_.Row(blocker->id);
        return row.ok() && row->state == TaskState::kSucceeded;
      },
      kWaitTimeout));
  absl::StatusOr<TaskSnapshot> row = store_.Row(waiting->id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->state, TaskState::kQueued);  // for the next start
  executor_.reset();
  ASSERT_TRUE(store_.Row(waiting->id).ok());
  EXPECT_EQ(store_.Row(waiting->id)->state, TaskState::kQueued);

  Start();  // the next start runs it
  absl::StatusOr<TaskSnapshot> ran = AwaitTerminal(*executor_, waiting->id);
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->state, TaskState::kSucceeded);
}

TEST_F(DurableExecutorTest, AStoreThatIsDownRefusesSubmitsAndKeepsNoSlot) {
  Start();
  store_.SetDown(true);
  Caller caller{.name = "alice", .max_active_tasks = 1};
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<TaskSnapshot> task =
        executor_->Submit(MakeSpec("echo"), caller);
    EXPECT_EQ(task.status().code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(executor_->active_tasks(), 0);
  store_.SetDown(false);
  // The quota of 1 was not used up by the refusals.
  absl::StatusOr<TaskSnapshot> task =
      executor_->Submit(MakeSpec("echo"), caller);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->spec->owner, "alice");
}

TEST_F(DurableExecutorTest, CancelAnswersOnceTheCancelIsCommitted) {
  Start(/*workers=*/1);
  absl::StatusOr<TaskSnapshot> task =
      executor_->Submit(MakeSpec("sleep", {{"ms", 10000}}));
  ASSERT_TRUE(task.ok());
  absl::StatusOr<TaskSnapshot> cancelled = executor_->Cancel(task->id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, TaskState::kCancelled);
  absl::StatusOr<TaskSnapshot> row = store_.Row(task->id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->state, TaskState::kCancelled);
}

TEST_F(DurableExecutorTest, DeleteRemovesTheRowAndListReadsTheStore) {
  Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<TaskSnapshot> task = executor_->Submit(MakeSpec("echo"));
    ASSERT_TRUE(task.ok());
    ids.push_back(task->id);
  }
  ASSERT_TRUE(executor_->Delete(ids[1]).ok());
  EXPECT_EQ(store_.Row(ids[1]).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<ListPage> page = executor_->List({});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->tasks.size(), 2u);
  EXPECT_EQ(page->tasks[0].id, ids[0]);
  EXPECT_EQ(page->tasks[1].id, ids[2]);
  // Another owner sees none of them.
  Caller bob{.name = "bob", .sees_all_tasks = false};
  EXPECT_EQ(executor_->Get(ids[0], bob).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace remex::executor
