// The pool contract, for every pool kind (thread and process), through the
// real Executor: submit, run, priorities, cancel, timeouts, full queue,
// drain. Process workers are this test binary re-started in worker mode.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/executor.h"
#include "server/executor/pool.h"
#include "server/functions/builtin_functions.h"
#include "tests/executor/executor_test_util.h"
#include "tests/testing/pool_fixture.h"
#include "tests/testing/wait.h"

namespace remex::executor {
namespace {

using ::remex::executor::testing::MakeSpec;
using ::remex::testing::PoolFixture;
using ::remex::testing::WaitUntil;
using ::testing::HasSubstr;

// The functions of this binary, in the test and in its workers alike.
void RegisterContractFunctions(FunctionRegistry& registry) {
  (void)functions::RegisterBuiltinFunctions({.enable_test_functions = true},
                                            registry);
}

class PoolContractTest : public PoolFixture,
                         public ::testing::TestWithParam<PoolKind> {
 protected:
  PoolContractTest() : PoolFixture(RegisterContractFunctions) {}

  void StartWith(int workers, size_t max_queue = 1000) {
    Start({.kind = GetParam(), .workers = workers, .max_queue = max_queue});
  }
};

TEST_P(PoolContractTest, EchoReturnsArgsAndInputThroughThePool) {
  StartWith(2);
  TaskSpec spec = MakeSpec("echo", Json{{"x", 1}, {"s", "é"}});
  spec.input = std::string("\0bytes\xff", 7);
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.outcome->result, (Json{{"x", 1}, {"s", "é"}}));
  EXPECT_EQ(done.outcome->output, spec.input);
  EXPECT_EQ(done.attempt, 1);
}

TEST_P(PoolContractTest, FailingFunctionEndsFailedWithItsMessage) {
  StartWith(1);
  const TaskSnapshot done =
      Await(Submit(MakeSpec("fail", Json{{"message", "no luck"}})));
  EXPECT_EQ(done.state, TaskState::kFailed);
  EXPECT_EQ(done.outcome->error.message, "no luck");
}

TEST_P(PoolContractTest, HigherPriorityRunsFirstAndFifoWithinAPriority) {
  StartWith(1);
  const std::string blocker = Submit(MakeSpec("sleep", Json{{"ms", 300}}));
  ASSERT_TRUE(WaitForState(blocker, TaskState::kRunning));
  std::vector<std::string> ids;
  for (int priority : {0, 5, 1, 5}) {
    TaskSpec spec = MakeSpec("echo");
    spec.priority = priority;
    ids.push_back(Submit(spec));
  }
  std::vector<absl::Time> started;
  for (const std::string& id : ids) started.push_back(Await(id).started_at);
  // Expected order: ids[1], ids[3] (priority 5, FIFO), ids[2], ids[0].
  EXPECT_LT(started[1], started[3]);
  EXPECT_LT(started[3], started[2]);
  EXPECT_LT(started[2], started[0]);
}

TEST_P(PoolContractTest, CancelQueuedEndsCancelledAndNeverRuns) {
  StartWith(1);
  const std::string blocker = Submit(MakeSpec("sleep", Json{{"ms", 10000}}));
  ASSERT_TRUE(WaitForState(blocker, TaskState::kRunning));
  const std::string queued = Submit(MakeSpec("echo"));
  absl::StatusOr<TaskSnapshot> cancelled = executor_->Cancel(queued);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, TaskState::kCancelled);
  EXPECT_EQ(cancelled->attempt, 0);
  ASSERT_TRUE(executor_->Cancel(blocker).ok());
  EXPECT_EQ(Await(queued).attempt, 0);
}

TEST_P(PoolContractTest, CancelRunningEndsCancelledAndFreesTheWorker) {
  StartWith(1);
  const std::string running = Submit(MakeSpec("sleep", Json{{"ms", 10000}}));
  ASSERT_TRUE(WaitForState(running, TaskState::kRunning));
  absl::StatusOr<TaskSnapshot> cancelled = executor_->Cancel(running);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, TaskState::kCancelled);
  // The cooperative function stops; the single worker takes the next task.
  const TaskSnapshot next =
      Await(Submit(MakeSpec("echo")), /*timeout=*/absl::Seconds(5));
  EXPECT_EQ(next.state, TaskState::kSucceeded);
}

TEST_P(PoolContractTest, QueueTimeoutEndsTimedOutWithoutRunning) {
  StartWith(1);
  const std::string blocker = Submit(MakeSpec("sleep", Json{{"ms", 10000}}));
  ASSERT_TRUE(WaitForState(blocker, TaskState::kRunning));
  TaskSpec spec = MakeSpec("echo");
  spec.queue_timeout = absl::Milliseconds(100);
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kTimedOut);
  EXPECT_EQ(done.attempt, 0);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("queue_timeout"));
  ASSERT_TRUE(executor_->Cancel(blocker).ok());
}

TEST_P(PoolContractTest, RunTimeoutEndsTimedOutAndThePoolGoesOn) {
  StartWith(1);
  TaskSpec spec = MakeSpec("sleep", Json{{"ms", 10000}});
  spec.run_timeout = absl::Milliseconds(100);
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kTimedOut);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("run_timeout"));
  EXPECT_EQ(Await(Submit(MakeSpec("echo"))).state, TaskState::kSucceeded);
}

TEST_P(PoolContractTest, FullQueueIsResourceExhausted) {
  StartWith(1, /*max_queue=*/2);
  const std::string blocker = Submit(MakeSpec("sleep", Json{{"ms", 10000}}));
  ASSERT_TRUE(WaitForState(blocker, TaskState::kRunning));
  Submit(MakeSpec("echo"));
  Submit(MakeSpec("echo"));
  absl::StatusOr<TaskSnapshot> refused = executor_->Submit(MakeSpec("echo"));
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_EQ(Stats().queued, 2u);
  ASSERT_TRUE(executor_->Cancel(blocker).ok());
}

TEST_P(PoolContractTest, StatsCountWorkersBusyAndQueued) {
  StartWith(2);
  EXPECT_EQ(Stats().workers, 2);
  EXPECT_EQ(Stats().kind, GetParam());
  const std::string a = Submit(MakeSpec("sleep", Json{{"ms", 10000}}));
  const std::string b = Submit(MakeSpec("sleep", Json{{"ms", 10000}}));
  Submit(MakeSpec("echo"));
  ASSERT_TRUE(WaitForState(a, TaskState::kRunning));
  ASSERT_TRUE(WaitForState(b, TaskState::kRunning));
  EXPECT_TRUE(WaitUntil([&] { return Stats().busy == 2; }));
  EXPECT_EQ(Stats().queued, 1u);
}

TEST_P(PoolContractTest, DrainCancelsQueuedAndLetsRunningFinish) {
  StartWith(1);
  const std::string running = Submit(MakeSpec("sleep", Json{{"ms", 300}}));
  ASSERT_TRUE(WaitForState(running, TaskState::kRunning));
  const std::string queued = Submit(MakeSpec("echo"));
  executor_->StartDrain();
  EXPECT_EQ(Await(queued).state, TaskState::kCancelled);
  EXPECT_EQ(Await(running).state, TaskState::kSucceeded);
  EXPECT_TRUE(
      absl::IsUnavailable(executor_->Submit(MakeSpec("echo")).status()));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, PoolContractTest,
                         ::testing::Values(PoolKind::kThread,
                                           PoolKind::kProcess),
                         [](const ::testing::TestParamInfo<PoolKind>& info) {
                           return std::string(PoolKindName(info.param));
                         });

}  // namespace
}  // namespace remex::executor

int main(int argc, char** argv) {
  return remex::testing::PoolTestMain(
      argc, argv, remex::executor::RegisterContractFunctions);
}
