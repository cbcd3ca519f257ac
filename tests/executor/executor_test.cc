// The executor core: state machine, failures, priorities, cancel, timeouts,
// retention, errors, callbacks, List, drain, and a concurrent stress run.
#include "server/executor/executor.h"

#include <atomic>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/function_registry.h"
#include "server/functions/builtin_functions.h"
#include "tests/executor/executor_test_util.h"
#include "tests/testing/wait.h"

namespace remex::executor {
namespace {

using ::remex::executor::testing::AwaitTerminal;
using ::remex::executor::testing::MakeSpec;
using ::remex::executor::testing::ThreadPoolConfig;
using ::remex::testing::kWaitTimeout;
using ::remex::testing::WaitUntil;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// A sleep that only a cancel or a timeout ends within a test.
constexpr int kLongSleepMs = 10000;

class ExecutorTest : public ::testing::Test {
 protected:
  ExecutorTest() {
    EXPECT_TRUE(functions::RegisterBuiltinFunctions({}, registry_).ok());
    // Holds its worker until ReleaseGate(); deliberately ignores its
    // cancellation token, like a function that cannot be interrupted.
    Register({.name = "gate", .body = [this](TaskContext&) {
                gate_entered_.fetch_add(1);
                if (!gate_release_.WaitForNotificationWithTimeout(
                        absl::Seconds(30))) {
                  return absl::DeadlineExceededError("gate never released");
                }
                return absl::OkStatus();
              }});
    Register({.name = "throws", .body = [](TaskContext&) -> absl::Status {
                throw std::runtime_error("boom from the function");
              }});
    Register(
        {.name = "check_throws",
         .check_args = [](const Json&, const std::string&) -> absl::Status {
           throw std::runtime_error("boom from the check");
         },
         .body = [](TaskContext&) { return absl::OkStatus(); }});
    Register({.name = "bad_utf8", .body = [](TaskContext& context) {
                context.set_result(Json{{"text", "\xFF not UTF-8"}});
                return absl::OkStatus();
              }});
    Register({.name = "denied", .body = [](TaskContext&) {
                return absl::PermissionDeniedError("no access to /secret");
              }});
    // Appends args.tag to recorded(), to observe which tasks ran and in
    // which order.
    Register({.name = "record", .body = [this](TaskContext& context) {
                absl::MutexLock lock(&recorded_mu_);
                recorded_.push_back(context.args().value("tag", ""));
                return absl::OkStatus();
              }});
    Register({.name = "on_io", .default_pool = "io", .body = [](TaskContext&) {
                return absl::OkStatus();
              }});
  }

  ~ExecutorTest() override {
    ReleaseGate();
    executor_.reset();
  }

  void Register(FunctionSpec spec) {
    ASSERT_TRUE(registry_.Register(std::move(spec)).ok());
  }

  void Start(ExecutorOptions options) {
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(std::move(options), registry_);
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = *std::move(executor);
  }

  // One thread pool "default".
  void Start(int workers, size_t max_queue = 1000) {
    ExecutorOptions options;
    options.pools.push_back(ThreadPoolConfig("default", workers, max_queue));
    Start(std::move(options));
  }

  // Pools "default" and "io".
  void StartTwoPools() {
    ExecutorOptions options;
    options.pools.push_back(ThreadPoolConfig("default", 2));
    options.pools.push_back(ThreadPoolConfig("io", 1));
    Start(std::move(options));
  }

  // Submits `spec` and returns the id; fails the test if Submit fails.
  std::string Submit(TaskSpec spec) {
    absl::StatusOr<TaskSnapshot> snapshot = executor_->Submit(std::move(spec));
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    return snapshot.ok() ? snapshot->id : "";
  }

  std::string SubmitRecord(const std::string& tag, int32_t priority = 0) {
    TaskSpec spec = MakeSpec("record", {{"tag", tag}});
    spec.priority = priority;
    return Submit(std::move(spec));
  }

  std::string SubmitLongSleep() {
    return Submit(MakeSpec("sleep", {{"ms", kLongSleepMs}}));
  }

  // The terminal snapshot of `id`; fails the test if it does not end in time.
  TaskSnapshot Await(const std::string& id) {
    absl::StatusOr<TaskSnapshot> snapshot = AwaitTerminal(*executor_, id);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    return snapshot.ok() ? *std::move(snapshot) : TaskSnapshot();
  }

  // The state of `id` now; fails the test if it is unknown.
  TaskState StateOf(const std::string& id) {
    absl::StatusOr<TaskSnapshot> snapshot = executor_->Get(id);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    return snapshot.ok() ? snapshot->state : TaskState::kQueued;
  }

  bool WaitForState(const std::string& id, TaskState state) {
    return WaitUntil([&] { return StateOf(id) == state; });
  }

  // Submits a gate task and waits until it runs: it holds one worker of its
  // pool until ReleaseGate().
  std::string OccupyWorker() {
    const int entered = gate_entered_.load();
    std::string id = Submit(MakeSpec("gate"));
    EXPECT_TRUE(WaitUntil([&] { return gate_entered_.load() > entered; }))
        << "the gate task did not start";
    return id;
  }

  void ReleaseGate() {
    if (!gate_release_.HasBeenNotified()) gate_release_.Notify();
  }

  // Runs a record task and waits for it: everything queued before it at the
  // same priority on a one-worker pool has been taken by then.
  void Flush() {
    EXPECT_EQ(Await(SubmitRecord("flush")).state, TaskState::kSucceeded);
  }

  std::vector<std::string> recorded() {
    absl::MutexLock lock(&recorded_mu_);
    return recorded_;
  }

  PoolStats StatsOf(const std::string& pool) {
    for (const PoolStats& stats : executor_->PoolStatistics()) {
      if (stats.name == pool) return stats;
    }
    ADD_FAILURE() << "no pool " << pool;
    return PoolStats();
  }

  FunctionRegistry registry_;
  std::unique_ptr<Executor> executor_;

  std::atomic<int> gate_entered_{0};
  absl::Notification gate_release_;

  absl::Mutex recorded_mu_;
  std::vector<std::string> recorded_ ABSL_GUARDED_BY(recorded_mu_);
};

MATCHER_P(StatusIs, code, "") { return arg.code() == code; }

// --- Creation -------------------------------------------------------------

TEST_F(ExecutorTest, CreateRejectsBadPoolConfigs) {
  EXPECT_THAT(Executor::Create(ExecutorOptions(), registry_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));

  ExecutorOptions twice;
  twice.pools = {ThreadPoolConfig("a", 1), ThreadPoolConfig("a", 1)};
  absl::Status status = Executor::Create(twice, registry_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("'a'"));

  ExecutorOptions no_workers;
  no_workers.pools = {ThreadPoolConfig("a", 0)};
  status = Executor::Create(no_workers, registry_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("workers"));

  ExecutorOptions no_queue;
  no_queue.pools = {ThreadPoolConfig("a", 1, 0)};
  status = Executor::Create(no_queue, registry_).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("max_queue"));
}

// --- State machine and outcomes --------------------------------------------

TEST_F(ExecutorTest, TaskGoesQueuedRunningSucceeded) {
  Start(1);
  const absl::Time before = absl::Now();
  TaskSpec spec = MakeSpec("gate");
  spec.labels = {{"team", "infra"}};
  absl::StatusOr<TaskSnapshot> submitted = executor_->Submit(spec);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->state, TaskState::kQueued);
  EXPECT_EQ(submitted->attempt, 0);
  EXPECT_EQ(submitted->outcome, nullptr);
  EXPECT_EQ(submitted->spec->pool, "default");
  EXPECT_EQ(submitted->spec->labels.at("team"), "infra");
  EXPECT_GE(submitted->created_at, before);
  EXPECT_EQ(executor_->active_tasks(), 1);

  ASSERT_TRUE(WaitForState(submitted->id, TaskState::kRunning));
  absl::StatusOr<TaskSnapshot> running = executor_->Get(submitted->id);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->attempt, 1);
  EXPECT_EQ(running->outcome, nullptr);
  EXPECT_GE(running->started_at, running->created_at);
  EXPECT_EQ(running->finished_at, absl::InfinitePast());
  EXPECT_EQ(StatsOf("default").busy, 1);

  ReleaseGate();
  const TaskSnapshot done = Await(submitted->id);
  EXPECT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.attempt, 1);
  EXPECT_FALSE(done.cancel_requested);
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kOk);
  EXPECT_EQ(done.created_at, submitted->created_at);
  EXPECT_LE(done.created_at, done.started_at);
  EXPECT_LE(done.started_at, done.finished_at);
  EXPECT_LE(done.finished_at, absl::Now());
  EXPECT_TRUE(WaitUntil([&] {
    return executor_->active_tasks() == 0 && executor_->retained_tasks() == 1;
  }));
}

TEST_F(ExecutorTest, EchoReturnsArgsAndInput) {
  Start(1);
  TaskSpec spec = MakeSpec("echo", {{"x", 1}, {"y", {"a", "b"}}});
  spec.input = std::string("bytes\0with nul", 14);
  const TaskSnapshot done = Await(Submit(spec));
  ASSERT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.outcome->result, spec.args);
  EXPECT_EQ(done.outcome->output, spec.input);
}

TEST_F(ExecutorTest, ReturnedStatusEndsFailedWithItsCodeAndMessage) {
  Start(1);
  TaskSnapshot done = Await(Submit(MakeSpec("denied")));
  EXPECT_EQ(done.state, TaskState::kFailed);
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(done.outcome->error.message, "no access to /secret");
  EXPECT_EQ(done.attempt, 1);

  done = Await(Submit(MakeSpec("fail", {{"message", "out of coffee"}})));
  EXPECT_EQ(done.state, TaskState::kFailed);
  EXPECT_EQ(done.outcome->error.message, "out of coffee");
  EXPECT_NE(done.outcome->error.code, absl::StatusCode::kOk);
}

TEST_F(ExecutorTest, ThrowingFunctionEndsFailedAndExecutorGoesOn) {
  Start(1);
  const TaskSnapshot done = Await(Submit(MakeSpec("throws")));
  EXPECT_EQ(done.state, TaskState::kFailed);
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kUnknown);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("boom from the function"));

  // The only worker survived the exception.
  const TaskSnapshot after = Await(Submit(MakeSpec("echo", {{"ok", true}})));
  EXPECT_EQ(after.state, TaskState::kSucceeded);
  EXPECT_TRUE(WaitUntil([&] { return executor_->active_tasks() == 0; }));
}

TEST_F(ExecutorTest, ResultThatIsNotUtf8EndsFailedInsteadOfBreakingClients) {
  Start(1);
  const TaskSnapshot done = Await(Submit(MakeSpec("bad_utf8")));
  EXPECT_EQ(done.state, TaskState::kFailed);
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kInternal);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("not valid UTF-8"));
}

TEST_F(ExecutorTest, ThrowingArgsCheckIsInvalidArgumentNotACrash) {
  Start(1);
  const absl::StatusOr<TaskSnapshot> task =
      executor_->Submit(MakeSpec("check_throws"));
  ASSERT_FALSE(task.ok());
  EXPECT_EQ(task.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(task.status().message(), HasSubstr("boom from the check"));
  EXPECT_EQ(executor_->active_tasks(), 0);
}

TEST_F(ExecutorTest, HigherPriorityRunsFirstAndFifoWithinAPriority) {
  Start(1);
  const std::string gate = OccupyWorker();
  const std::vector<std::string> ids = {
      SubmitRecord("p0", 0), SubmitRecord("p5-first", 5), SubmitRecord("p1", 1),
      SubmitRecord("p5-second", 5)};
  EXPECT_EQ(StatsOf("default").queued, 4u);
  ReleaseGate();
  for (const std::string& id : ids) {
    EXPECT_EQ(Await(id).state, TaskState::kSucceeded);
  }
  EXPECT_THAT(recorded(), ElementsAre("p5-first", "p5-second", "p1", "p0"));
}

TEST_F(ExecutorTest, FunctionDefaultPoolAndExplicitPool) {
  StartTwoPools();
  absl::StatusOr<TaskSnapshot> on_io = executor_->Submit(MakeSpec("on_io"));
  ASSERT_TRUE(on_io.ok()) << on_io.status();
  EXPECT_EQ(on_io->spec->pool, "io");

  absl::StatusOr<TaskSnapshot> echo = executor_->Submit(MakeSpec("echo"));
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->spec->pool, "default");

  TaskSpec explicit_pool = MakeSpec("echo");
  explicit_pool.pool = "io";
  absl::StatusOr<TaskSnapshot> echo_io = executor_->Submit(explicit_pool);
  ASSERT_TRUE(echo_io.ok()) << echo_io.status();
  EXPECT_EQ(echo_io->spec->pool, "io");

  for (const std::string& id : {on_io->id, echo->id, echo_io->id}) {
    EXPECT_EQ(Await(id).state, TaskState::kSucceeded);
  }
}

TEST_F(ExecutorTest, DefaultPoolIsTheFirstWhenNoneIsNamedDefault) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("alpha", 1), ThreadPoolConfig("beta", 1)};
  Start(std::move(options));
  absl::StatusOr<TaskSnapshot> echo = executor_->Submit(MakeSpec("echo"));
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->spec->pool, "alpha");
  EXPECT_EQ(executor_->DefaultPoolOf(*registry_.Find("echo")), "alpha");
  EXPECT_EQ(Await(echo->id).state, TaskState::kSucceeded);
}

// --- Cancel ----------------------------------------------------------------

TEST_F(ExecutorTest, CancelQueuedEndsCancelledAtOnceAndNeverRuns) {
  Start(1);
  OccupyWorker();
  const std::string id = SubmitRecord("cancelled");
  int callbacks = 0;
  ASSERT_TRUE(
      executor_->OnDone(id, [&](const TaskSnapshot&) { ++callbacks; }).ok());

  absl::StatusOr<TaskSnapshot> cancelled = executor_->Cancel(id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, TaskState::kCancelled);
  EXPECT_TRUE(cancelled->cancel_requested);
  EXPECT_EQ(cancelled->attempt, 0);
  ASSERT_NE(cancelled->outcome, nullptr);
  EXPECT_EQ(cancelled->outcome->error.code, absl::StatusCode::kCancelled);
  EXPECT_EQ(cancelled->started_at, absl::InfinitePast());
  EXPECT_NE(cancelled->finished_at, absl::InfinitePast());
  // Ended on the cancelling thread, before Cancel returned.
  EXPECT_EQ(callbacks, 1);
  EXPECT_EQ(StatsOf("default").queued, 0u);
  EXPECT_EQ(executor_->active_tasks(), 1);  // the gate

  ReleaseGate();
  Flush();
  EXPECT_THAT(recorded(), ElementsAre("flush"));
  EXPECT_EQ(StateOf(id), TaskState::kCancelled);
}

TEST_F(ExecutorTest, CancelRunningEndsPromptlyAndFreesTheWorker) {
  Start(1);
  const std::string id = SubmitLongSleep();
  ASSERT_TRUE(WaitForState(id, TaskState::kRunning));

  const absl::Time start = absl::Now();
  absl::StatusOr<TaskSnapshot> cancelled = executor_->Cancel(id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, TaskState::kCancelled);
  EXPECT_EQ(cancelled->attempt, 1);
  EXPECT_EQ(cancelled->outcome->error.code, absl::StatusCode::kCancelled);

  // The sleep stopped early: the only worker runs the next task long before
  // the sleep would have ended.
  const TaskSnapshot next = Await(Submit(MakeSpec("echo")));
  EXPECT_EQ(next.state, TaskState::kSucceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(WaitUntil([&] { return StatsOf("default").busy == 0; }));
  // The function's own (cancelled) return did not overwrite the state.
  EXPECT_EQ(StateOf(id), TaskState::kCancelled);
}

TEST_F(ExecutorTest, CancelledTaskStaysCancelledWhenItsFunctionReturnsOk) {
  Start(1);
  const std::string gate = OccupyWorker();  // ignores its token
  absl::StatusOr<TaskSnapshot> cancelled = executor_->Cancel(gate);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, TaskState::kCancelled);
  EXPECT_EQ(executor_->active_tasks(), 0);
  EXPECT_EQ(StatsOf("default").busy, 1);  // cooperative: still running

  ReleaseGate();
  Flush();
  const absl::StatusOr<TaskSnapshot> after = executor_->Get(gate);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state, TaskState::kCancelled);
  EXPECT_EQ(after->outcome->error.code, absl::StatusCode::kCancelled);
  EXPECT_EQ(after->finished_at, cancelled->finished_at);
}

TEST_F(ExecutorTest, CancelFinishedTaskLeavesItAsItIs) {
  Start(1);
  const TaskSnapshot done = Await(Submit(MakeSpec("echo", {{"k", "v"}})));
  ASSERT_EQ(done.state, TaskState::kSucceeded);

  absl::StatusOr<TaskSnapshot> after = executor_->Cancel(done.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, TaskState::kSucceeded);
  EXPECT_FALSE(after->cancel_requested);
  EXPECT_EQ(after->outcome, done.outcome);
  EXPECT_EQ(after->finished_at, done.finished_at);
}

// --- Timeouts ----------------------------------------------------------------

TEST_F(ExecutorTest, QueueTimeoutEndsTimedOutAndTheTaskNeverRuns) {
  Start(1);
  OccupyWorker();
  TaskSpec spec = MakeSpec("record", {{"tag", "late"}});
  spec.queue_timeout = absl::Milliseconds(50);
  const std::string id = Submit(spec);

  const TaskSnapshot done = Await(id);
  EXPECT_EQ(done.state, TaskState::kTimedOut);
  EXPECT_EQ(done.attempt, 0);
  EXPECT_EQ(done.started_at, absl::InfinitePast());
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("queue_timeout"));
  EXPECT_GE(done.finished_at - done.created_at, absl::Milliseconds(50));
  EXPECT_EQ(StatsOf("default").queued, 0u);

  ReleaseGate();
  Flush();
  EXPECT_THAT(recorded(), ElementsAre("flush"));
}

TEST_F(ExecutorTest, QueueTimeoutDoesNotEndATaskThatStarted) {
  Start(1);
  TaskSpec spec = MakeSpec("sleep", {{"ms", 150}});
  spec.queue_timeout = absl::Milliseconds(50);
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kSucceeded);
}

TEST_F(ExecutorTest, RunTimeoutEndsTimedOutAndFreesTheWorker) {
  Start(1);
  TaskSpec spec = MakeSpec("sleep", {{"ms", kLongSleepMs}});
  spec.run_timeout = absl::Milliseconds(50);
  const absl::Time start = absl::Now();
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kTimedOut);
  EXPECT_EQ(done.attempt, 1);
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("run_timeout"));
  EXPECT_GE(done.finished_at - done.started_at, absl::Milliseconds(50));

  EXPECT_EQ(Await(Submit(MakeSpec("echo"))).state, TaskState::kSucceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(ExecutorTest, RunTimeoutDoesNotEndATaskThatFinishedInTime) {
  Start(1);
  TaskSpec spec = MakeSpec("sleep", {{"ms", 10}});
  spec.run_timeout = absl::Seconds(5);
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.outcome->result, Json({{"slept_ms", 10}}));
}

// --- Retention ---------------------------------------------------------------

TEST_F(ExecutorTest, FinishedTaskIsForgottenAfterItsTtl) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.retention_sweep_interval = absl::Milliseconds(10);
  Start(std::move(options));

  TaskSpec short_lived = MakeSpec("echo");
  short_lived.ttl = absl::Milliseconds(50);
  TaskSpec long_lived = MakeSpec("echo");
  long_lived.ttl = absl::Hours(1);
  const std::string gone = Submit(short_lived);
  const std::string kept = Submit(long_lived);
  EXPECT_EQ(Await(gone).state, TaskState::kSucceeded);
  EXPECT_EQ(Await(kept).state, TaskState::kSucceeded);

  EXPECT_TRUE(WaitUntil([&] {
    return executor_->Get(gone).status().code() == absl::StatusCode::kNotFound;
  }));
  EXPECT_THAT(executor_->Cancel(gone).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(executor_->OnDone(gone, [](const TaskSnapshot&) {}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(executor_->Get(kept).ok());
  EXPECT_TRUE(WaitUntil([&] { return executor_->retained_tasks() == 1; }));
}

TEST_F(ExecutorTest, ServerDefaultTtlAppliesWhenTheTaskSetsNone) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.default_ttl = absl::Milliseconds(50);
  options.retention_sweep_interval = absl::Milliseconds(10);
  Start(std::move(options));
  const std::string id = Submit(MakeSpec("echo"));
  EXPECT_EQ(Await(id).state, TaskState::kSucceeded);
  EXPECT_TRUE(WaitUntil([&] {
    return executor_->Get(id).status().code() == absl::StatusCode::kNotFound;
  }));
  EXPECT_EQ(executor_->retained_tasks(), 0u);
}

TEST_F(ExecutorTest, RunningTaskIsNotForgottenWhileItRuns) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.default_ttl = absl::Milliseconds(1);
  options.retention_sweep_interval = absl::Milliseconds(1);
  Start(std::move(options));
  const std::string id = OccupyWorker();
  // Several sweeps pass; a task that has not ended has no retention clock.
  EXPECT_FALSE(WaitUntil([&] { return !executor_->Get(id).ok(); },
                         absl::Milliseconds(50)));
  ReleaseGate();
}

TEST_F(ExecutorTest, RetentionCountBudgetKeepsTheNewestFinishedTasks) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.retention.max_tasks = 3;
  Start(std::move(options));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Submit(MakeSpec("echo", {{"i", i}})));
    EXPECT_EQ(Await(ids.back()).state, TaskState::kSucceeded);
  }
  // The last task's retention starts just after its done callbacks ran.
  EXPECT_TRUE(WaitUntil([&] { return !executor_->Get(ids[1]).ok(); }));
  EXPECT_EQ(executor_->retained_tasks(), 3u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(executor_->Get(ids[i]).ok(), i >= 2) << "task " << i;
  }
  EXPECT_EQ(executor_->List({}).value().tasks.size(), 3u);
}

TEST_F(ExecutorTest, RetentionByteBudgetCountsInputsAndOutputs) {
  constexpr size_t kPayload = 300 << 10;
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.retention.max_bytes = 2 * kPayload;
  Start(std::move(options));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    // echo keeps its input and returns it as output: 2 payloads per task.
    TaskSpec spec = MakeSpec("echo", {{"i", i}});
    spec.input = std::string(kPayload / 2, 'x');
    ids.push_back(Submit(spec));
    EXPECT_EQ(Await(ids.back()).state, TaskState::kSucceeded);
  }
  EXPECT_TRUE(WaitUntil([&] { return executor_->retained_tasks() == 1; }));
  EXPECT_FALSE(executor_->Get(ids[0]).ok());
  EXPECT_FALSE(executor_->Get(ids[1]).ok());
  EXPECT_TRUE(executor_->Get(ids[2]).ok());
}

// --- Memory budget -----------------------------------------------------------

// Queued tasks fill the budget; one that does not fit is refused with a
// clear error, and fits again once another leaves.
TEST_F(ExecutorTest, MemoryBudgetRefusesTasksThatDoNotFit) {
  constexpr size_t kInput = 1 << 20;
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.memory_budget = 3 * kInput + kInput / 2;
  Start(std::move(options));
  OccupyWorker();
  TaskSpec big = MakeSpec("echo");
  big.input = std::string(kInput, 'x');
  std::vector<std::string> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(Submit(big));
  const MemoryUse full = executor_->memory_use();
  EXPECT_GE(full.queued, 3 * kInput);
  EXPECT_LE(full.queued + full.running, full.limit);

  absl::StatusOr<TaskSnapshot> refused = executor_->Submit(big);
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("memory budget is full"));
  EXPECT_EQ(executor_->memory_use().rejected, 1);
  EXPECT_EQ(executor_->active_tasks(), 4);  // the gate and three

  ASSERT_TRUE(executor_->Cancel(queued[0]).ok());
  queued.push_back(Submit(big));
  ReleaseGate();
  // Every byte charged was given back, whichever way each task ended
  // (finished ones are forgotten as soon as they end: each keeps its input
  // and an output as large).
  EXPECT_TRUE(WaitUntil([&] { return executor_->active_tasks() == 0; }));
  const MemoryUse after = executor_->memory_use();
  EXPECT_EQ(after.queued, 0u);
  EXPECT_EQ(after.running, 0u);
  EXPECT_LE(after.retained, after.limit);
}

// Finished tasks are kept only while new work does not need their room.
TEST_F(ExecutorTest, FinishedTasksGiveWayToNewWork) {
  constexpr size_t kInput = 1 << 20;
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.memory_budget = 5 * kInput;
  Start(std::move(options));
  // echo keeps its input and returns it as output: two inputs a task.
  TaskSpec big = MakeSpec("echo");
  big.input = std::string(kInput, 'x');
  const std::string first = Submit(big);
  ASSERT_EQ(Await(first).state, TaskState::kSucceeded);
  const std::string second = Submit(big);
  ASSERT_EQ(Await(second).state, TaskState::kSucceeded);
  EXPECT_TRUE(executor_->Get(first).ok());
  EXPECT_GE(executor_->memory_use().retained, 4 * kInput);

  OccupyWorker();
  const std::string third = Submit(big);  // needs the first one's room
  EXPECT_FALSE(executor_->Get(first).ok());
  EXPECT_TRUE(executor_->Get(second).ok());
  const MemoryUse use = executor_->memory_use();
  EXPECT_LE(use.queued + use.running + use.retained, use.limit);
  ReleaseGate();
  EXPECT_EQ(Await(third).state, TaskState::kSucceeded);
}

// A task that alone is larger than the budget is refused, however empty
// the server is.
TEST_F(ExecutorTest, TaskLargerThanTheBudgetIsRefused) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  options.memory_budget = 1 << 20;
  Start(std::move(options));
  TaskSpec huge = MakeSpec("echo");
  huge.labels["big"] = std::string(2 << 20, 'l');
  EXPECT_THAT(executor_->Submit(huge).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(executor_->active_tasks(), 0);
  EXPECT_EQ(executor_->memory_use().queued, 0u);
}

// --- Admission errors --------------------------------------------------------

TEST_F(ExecutorTest, FullQueueIsResourceExhausted) {
  Start(/*workers=*/1, /*max_queue=*/2);
  OccupyWorker();
  const std::string first = SubmitRecord("a");
  const std::string second = SubmitRecord("b");
  absl::StatusOr<TaskSnapshot> third =
      executor_->Submit(MakeSpec("record", {{"tag", "c"}}));
  EXPECT_THAT(third.status(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("default"));
  // The refused task left no trace.
  EXPECT_EQ(executor_->active_tasks(), 3);
  EXPECT_EQ(executor_->List({}).value().tasks.size(), 3u);

  // Once a slot frees up, Submit succeeds again.
  ASSERT_TRUE(executor_->Cancel(first).ok());
  const std::string fourth = SubmitRecord("d");
  ReleaseGate();
  EXPECT_EQ(Await(second).state, TaskState::kSucceeded);
  EXPECT_EQ(Await(fourth).state, TaskState::kSucceeded);
  EXPECT_THAT(recorded(), ElementsAre("b", "d"));
}

TEST_F(ExecutorTest, SubmitErrorsNameWhatIsWrong) {
  StartTwoPools();

  absl::Status status = executor_->Submit(MakeSpec("no_such_fn")).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(std::string(status.message()), HasSubstr("no_such_fn"));

  TaskSpec bad_pool = MakeSpec("echo");
  bad_pool.pool = "gpu";
  status = executor_->Submit(bad_pool).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("gpu"), HasSubstr("default"), HasSubstr("io")));

  status = executor_->Submit(MakeSpec("sleep", {{"ms", "soon"}})).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("ms"));

  status = executor_->Submit(MakeSpec("sleep")).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("ms"));

  TaskSpec attempts = MakeSpec("echo");
  attempts.max_attempts = -1;
  status = executor_->Submit(attempts).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("max_attempts"));
  attempts.max_attempts = 0;
  EXPECT_THAT(executor_->Submit(attempts).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));

  TaskSpec queue_timeout = MakeSpec("echo");
  queue_timeout.queue_timeout = absl::Seconds(-1);
  status = executor_->Submit(queue_timeout).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("queue_timeout"));

  TaskSpec run_timeout = MakeSpec("echo");
  run_timeout.run_timeout = absl::Seconds(-1);
  status = executor_->Submit(run_timeout).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("run_timeout"));

  TaskSpec ttl = MakeSpec("echo");
  ttl.ttl = absl::Seconds(-1);
  status = executor_->Submit(ttl).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(status.message()), HasSubstr("ttl"));

  // Nothing was accepted.
  EXPECT_EQ(executor_->active_tasks(), 0);
  EXPECT_THAT(executor_->List({}).value().tasks, IsEmpty());
}

TEST_F(ExecutorTest, UnknownIdIsNotFoundEverywhere) {
  Start(1);
  const std::string unknown = "000000000000000000000000";
  EXPECT_THAT(executor_->Get(unknown).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(executor_->Cancel(unknown).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(executor_->Delete(unknown),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(executor_->OnDone(unknown, [](const TaskSnapshot&) {}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(executor_->Get("").status(),
              StatusIs(absl::StatusCode::kNotFound));
}

// --- OnDone and Delete -------------------------------------------------------

TEST_F(ExecutorTest, OnDoneRunsOnceWithTheTerminalSnapshot) {
  Start(1);
  const std::string id = OccupyWorker();
  struct Calls {
    absl::Mutex mu;
    std::vector<TaskSnapshot> snapshots;
  };
  auto early = std::make_shared<Calls>();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(executor_
                    ->OnDone(id,
                             [early](const TaskSnapshot& snapshot) {
                               absl::MutexLock lock(&early->mu);
                               early->snapshots.push_back(snapshot);
                             })
                    .ok());
  }
  ReleaseGate();
  ASSERT_EQ(Await(id).state, TaskState::kSucceeded);
  {
    absl::MutexLock lock(&early->mu);
    ASSERT_EQ(early->snapshots.size(), 2u);
    for (const TaskSnapshot& snapshot : early->snapshots) {
      EXPECT_EQ(snapshot.id, id);
      EXPECT_EQ(snapshot.state, TaskState::kSucceeded);
      EXPECT_NE(snapshot.outcome, nullptr);
      EXPECT_NE(snapshot.finished_at, absl::InfinitePast());
    }
  }

  // Registered after the end: runs at once, on this thread.
  int late_calls = 0;
  TaskState late_state = TaskState::kQueued;
  ASSERT_TRUE(executor_
                  ->OnDone(id,
                           [&](const TaskSnapshot& snapshot) {
                             ++late_calls;
                             late_state = snapshot.state;
                           })
                  .ok());
  EXPECT_EQ(late_calls, 1);
  EXPECT_EQ(late_state, TaskState::kSucceeded);

  // Nothing calls the early callbacks again (e.g. a later Cancel).
  ASSERT_TRUE(executor_->Cancel(id).ok());
  absl::MutexLock lock(&early->mu);
  EXPECT_EQ(early->snapshots.size(), 2u);
}

// Records what a DoneListener is told, in a log it may share with done
// callbacks, so that a test sees the order.
class RecordingListener final : public DoneListener {
 public:
  void OnTaskDone(uint64_t tag, const TaskSnapshot& task) override {
    absl::MutexLock lock(&mu_);
    told_.push_back(absl::StrCat("listener ", tag, " ",
                                 TaskStateName(task.state), " ", task.id));
  }
  void Log(const std::string& line) {
    absl::MutexLock lock(&mu_);
    told_.push_back(line);
  }
  std::vector<std::string> told() {
    absl::MutexLock lock(&mu_);
    return told_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> told_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ExecutorTest, ListenerIsToldOnceUnderItsTagBeforeDoneCallbacks) {
  Start(1);
  OccupyWorker();
  RecordingListener listener;
  absl::StatusOr<TaskSnapshot> runs =
      executor_->Submit(MakeSpec("record", {{"tag", "a"}}), {}, &listener, 42);
  absl::StatusOr<TaskSnapshot> cancelled =
      executor_->Submit(MakeSpec("record", {{"tag", "b"}}), {}, &listener, 7);
  ASSERT_TRUE(runs.ok() && cancelled.ok());
  ASSERT_TRUE(executor_
                  ->OnDone(runs->id,
                           [&](const TaskSnapshot&) {
                             listener.Log("callback " + runs->id);
                           })
                  .ok());
  ASSERT_TRUE(executor_->Cancel(cancelled->id).ok());  // ended while queued
  ReleaseGate();
  ASSERT_EQ(Await(runs->id).state, TaskState::kSucceeded);
  // Nothing tells it again.
  ASSERT_TRUE(executor_->Cancel(runs->id).ok());
  EXPECT_THAT(
      listener.told(),
      ElementsAre("listener 7 CANCELLED " + cancelled->id,
                  "listener 42 SUCCEEDED " + runs->id, "callback " + runs->id));
}

TEST_F(ExecutorTest, RefusedSubmitDoesNotTellItsListener) {
  Start(/*workers=*/1, /*max_queue=*/1);
  OccupyWorker();
  RecordingListener listener;
  absl::StatusOr<TaskSnapshot> queued =
      executor_->Submit(MakeSpec("record", {{"tag", "a"}}), {}, &listener, 1);
  ASSERT_TRUE(queued.ok()) << queued.status();
  absl::StatusOr<TaskSnapshot> refused =
      executor_->Submit(MakeSpec("record", {{"tag", "b"}}), {}, &listener, 2);
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kResourceExhausted));
  // The refused task left no trace.
  EXPECT_EQ(executor_->active_tasks(), 2);
  EXPECT_EQ(executor_->List({}).value().tasks.size(), 2u);
  ReleaseGate();
  EXPECT_EQ(Await(queued->id).state, TaskState::kSucceeded);
  EXPECT_TRUE(WaitUntil([&] { return executor_->active_tasks() == 0; }));
  EXPECT_THAT(listener.told(),
              ElementsAre("listener 1 SUCCEEDED " + queued->id));
  EXPECT_THAT(recorded(), ElementsAre("a"));
}

// A done callback (e.g. one that completes a parked Await) sees the executor
// already counting the task as finished and retained.
TEST_F(ExecutorTest, CountsAreUpToDateWhenDoneCallbacksRun) {
  Start(1);
  const std::string id = OccupyWorker();
  absl::Notification done;
  int64_t active_in_callback = -1;
  size_t retained_in_callback = 0;
  ASSERT_TRUE(executor_
                  ->OnDone(id,
                           [&](const TaskSnapshot&) {
                             active_in_callback = executor_->active_tasks();
                             retained_in_callback = executor_->retained_tasks();
                             done.Notify();
                           })
                  .ok());
  ReleaseGate();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_EQ(active_in_callback, 0);
  EXPECT_EQ(retained_in_callback, 1u);
}

TEST_F(ExecutorTest, DeleteRunningTaskCancelsItAndForgetsIt) {
  Start(1);
  const std::string id = SubmitLongSleep();
  ASSERT_TRUE(WaitForState(id, TaskState::kRunning));
  absl::Notification done;
  TaskState final_state = TaskState::kQueued;
  ASSERT_TRUE(executor_
                  ->OnDone(id,
                           [&](const TaskSnapshot& snapshot) {
                             final_state = snapshot.state;
                             done.Notify();
                           })
                  .ok());

  ASSERT_TRUE(executor_->Delete(id).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_EQ(final_state, TaskState::kCancelled);
  EXPECT_THAT(executor_->Get(id).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(executor_->Delete(id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(executor_->active_tasks(), 0);
  EXPECT_EQ(executor_->retained_tasks(), 0u);
  // The worker is free again.
  EXPECT_EQ(Await(Submit(MakeSpec("echo"))).state, TaskState::kSucceeded);
}

TEST_F(ExecutorTest, DeleteFinishedTaskForgetsIt) {
  Start(1);
  const std::string id = Submit(MakeSpec("echo"));
  ASSERT_EQ(Await(id).state, TaskState::kSucceeded);
  ASSERT_TRUE(WaitUntil([&] { return executor_->retained_tasks() == 1; }));
  EXPECT_TRUE(executor_->Delete(id).ok());
  EXPECT_THAT(executor_->Get(id).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(executor_->retained_tasks(), 0u);
}

// --- List --------------------------------------------------------------------

std::vector<std::string> IdsOf(const absl::StatusOr<ListPage>& page) {
  EXPECT_TRUE(page.ok()) << page.status();
  std::vector<std::string> ids;
  if (!page.ok()) return ids;
  for (const TaskSnapshot& task : page->tasks) ids.push_back(task.id);
  return ids;
}

TEST_F(ExecutorTest, ListFiltersByStateFunctionAndPool) {
  StartTwoPools();
  const std::string echo1 = Submit(MakeSpec("echo"));
  const std::string echo2 = Submit(MakeSpec("echo"));
  TaskSpec fail_on_io = MakeSpec("fail", {{"message", "x"}});
  fail_on_io.pool = "io";
  const std::string failed = Submit(fail_on_io);
  for (const std::string& id : {echo1, echo2, failed}) Await(id);
  const std::string running = OccupyWorker();

  ListQuery query;
  EXPECT_THAT(IdsOf(executor_->List(query)),
              ElementsAre(echo1, echo2, failed, running));

  query.state = TaskState::kSucceeded;
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(echo1, echo2));
  query.state = TaskState::kFailed;
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(failed));
  query.state = TaskState::kRunning;
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(running));
  query.state = TaskState::kCancelled;
  EXPECT_THAT(IdsOf(executor_->List(query)), IsEmpty());

  query = ListQuery();
  query.function = "fail";
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(failed));
  query.function = "gate";
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(running));

  query = ListQuery();
  query.pool = "io";
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(failed));
  query.pool = "default";
  EXPECT_THAT(IdsOf(executor_->List(query)),
              ElementsAre(echo1, echo2, running));

  query.function = "echo";
  query.state = TaskState::kSucceeded;
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(echo1, echo2));
  query.pool = "io";
  EXPECT_THAT(IdsOf(executor_->List(query)), IsEmpty());
}

TEST_F(ExecutorTest, ListPagesReturnEveryTaskOnceInSubmissionOrder) {
  Start(2);
  // Enough tasks that random ids in id order would be out of submission
  // order (by chance in order: 1 in 40!).
  constexpr int kTasks = 40;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) ids.push_back(Submit(MakeSpec("echo")));
  for (const std::string& id : ids) Await(id);

  std::vector<std::string> seen;
  std::vector<size_t> page_sizes;
  ListQuery query;
  query.page_size = 15;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<ListPage> page = executor_->List(query);
    ASSERT_TRUE(page.ok()) << page.status();
    page_sizes.push_back(page->tasks.size());
    for (const TaskSnapshot& task : page->tasks) {
      seen.push_back(task.id);
      EXPECT_EQ(task.list_position, executor_->Get(task.id)->list_position);
    }
    if (page->next_page_token.empty()) break;
    // The token is the list position of the page's last task, not its id.
    EXPECT_EQ(page->next_page_token,
              ListPageToken(page->tasks.back().list_position));
    EXPECT_EQ(page->next_page_token.find(page->tasks.back().id),
              std::string::npos);
    query.page_token = page->next_page_token;
  }
  EXPECT_THAT(page_sizes, ElementsAre(15u, 15u, 10u));
  EXPECT_EQ(seen, ids);

  // Exactly one page's worth: no next page.
  query = ListQuery();
  query.page_size = kTasks;
  absl::StatusOr<ListPage> page = executor_->List(query);
  EXPECT_EQ(IdsOf(page), ids);
  EXPECT_THAT(page->next_page_token, IsEmpty());

  // 0 means the default page size, which holds them all.
  query.page_size = 0;
  page = executor_->List(query);
  EXPECT_EQ(IdsOf(page), ids);
  EXPECT_THAT(page->next_page_token, IsEmpty());
}

TEST_F(ExecutorTest, ListPositionsFollowSubmissionOrder) {
  Start(2);
  uint64_t previous = 0;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<TaskSnapshot> task = executor_->Submit(MakeSpec("echo"));
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_GT(task->list_position, previous);
    previous = task->list_position;
    EXPECT_EQ(Await(task->id).list_position, previous);
  }
}

TEST_F(ExecutorTest, ListRefusesAPageTokenTheServerDidNotMake) {
  Start(1);
  const std::string first = Submit(MakeSpec("echo"));
  const std::string second = Submit(MakeSpec("echo"));
  Await(first);
  Await(second);
  ListQuery query;
  query.page_size = 1;
  absl::StatusOr<ListPage> page = executor_->List(query);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_THAT(IdsOf(page), ElementsAre(first));
  const std::string made = page->next_page_token;
  ASSERT_THAT(made, Not(IsEmpty()));

  for (const std::string& token :
       {first,                               // an id is not a token
        std::string("p"),                    // no number
        std::string("p0"),                   // no task has position 0
        absl::StrCat("p0", made.substr(1)),  // not as the server writes it
        absl::StrCat(made, "x"), absl::StrCat(" ", made), std::string("P1"),
        std::string("p-1"), std::string("p+1"),
        std::string("p99999999999999999999999"),  // overflows
        std::string("p18446744073709551615"),     // past the last task
        ListPageToken(1000),                      // past the last task
        std::string("p\xff")}) {
    query.page_token = token;
    const absl::Status status = executor_->List(query).status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument)) << token;
    EXPECT_THAT(status.message(), HasSubstr("page_token")) << token;
  }

  query.page_token = made;
  EXPECT_THAT(IdsOf(executor_->List(query)), ElementsAre(second));
}

// --- Drain and shutdown ------------------------------------------------------

TEST_F(ExecutorTest, DrainRefusesNewTasksCancelsQueuedAndLetsRunningFinish) {
  Start(1);
  const std::string running = OccupyWorker();
  const std::string queued1 = SubmitRecord("q1");
  const std::string queued2 = SubmitRecord("q2");

  executor_->StartDrain();
  EXPECT_TRUE(executor_->draining());
  EXPECT_THAT(executor_->Submit(MakeSpec("echo")).status(),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(StateOf(queued1), TaskState::kCancelled);
  EXPECT_EQ(StateOf(queued2), TaskState::kCancelled);
  EXPECT_EQ(StateOf(running), TaskState::kRunning);
  EXPECT_EQ(executor_->active_tasks(), 1);
  EXPECT_FALSE(executor_->WaitUntilIdle(absl::Now() + absl::Milliseconds(20)));

  ReleaseGate();
  EXPECT_TRUE(executor_->WaitUntilIdle(absl::Now() + kWaitTimeout));
  EXPECT_EQ(StateOf(running), TaskState::kSucceeded);
  EXPECT_EQ(executor_->active_tasks(), 0);
  EXPECT_THAT(recorded(), IsEmpty());
}

TEST_F(ExecutorTest, WaitUntilIdleThenCancelAllEndsEveryTask) {
  Start(2);
  std::vector<std::string> ids = {SubmitLongSleep(), SubmitLongSleep()};
  ASSERT_TRUE(WaitForState(ids[0], TaskState::kRunning));
  ASSERT_TRUE(WaitForState(ids[1], TaskState::kRunning));
  ids.push_back(SubmitLongSleep());  // queued

  executor_->StartDrain();
  EXPECT_FALSE(executor_->WaitUntilIdle(absl::Now() + absl::Milliseconds(50)));
  executor_->CancelAll("the server shut down");
  EXPECT_TRUE(executor_->WaitUntilIdle(absl::Now() + kWaitTimeout));
  EXPECT_EQ(executor_->active_tasks(), 0);
  for (const std::string& id : ids) {
    absl::StatusOr<TaskSnapshot> task = executor_->Get(id);
    ASSERT_TRUE(task.ok());
    EXPECT_EQ(task->state, TaskState::kCancelled);
  }
  absl::StatusOr<TaskSnapshot> running = executor_->Get(ids[0]);
  EXPECT_EQ(running->outcome->error.message, "the server shut down");
  EXPECT_TRUE(WaitUntil([&] { return StatsOf("default").busy == 0; }));
}

TEST_F(ExecutorTest, WaitUntilIdleWithoutDrainReturnsWhenTasksEnd) {
  Start(1);
  Submit(MakeSpec("sleep", {{"ms", 50}}));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(executor_->WaitUntilIdle(start + absl::Seconds(5)));
  // Woken by the task's end, not by the deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(executor_->active_tasks(), 0);
}

TEST_F(ExecutorTest, DestructorEndsRunningAndQueuedTasks) {
  Start(1);
  const std::string running = SubmitLongSleep();
  ASSERT_TRUE(WaitForState(running, TaskState::kRunning));
  const std::string queued = SubmitLongSleep();
  std::vector<TaskState> states;
  for (const std::string& id : {running, queued}) {
    ASSERT_TRUE(executor_
                    ->OnDone(id,
                             [&states](const TaskSnapshot& snapshot) {
                               states.push_back(snapshot.state);
                             })
                    .ok());
  }
  const absl::Time start = absl::Now();
  executor_.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_THAT(states, UnorderedElementsAre(TaskState::kCancelled,
                                           TaskState::kCancelled));
}

// --- Stress ------------------------------------------------------------------

TEST_F(ExecutorTest, ConcurrentSubmitsAndCancelsEndEveryTaskExactlyOnce) {
  Start(/*workers=*/2, /*max_queue=*/100000);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;

  struct Tally {
    absl::Mutex mu;
    // Terminal callbacks per task id, and the state each reported.
    absl::flat_hash_map<std::string, int> calls ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, TaskState> states ABSL_GUARDED_BY(mu);
    std::atomic<int> done{0};
    std::atomic<int> submitted{0};
    std::atomic<int> refused{0};
  };
  auto tally = std::make_shared<Tally>();

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, tally, t] {
      std::mt19937 random(1234 + t);
      std::vector<std::string> mine;
      for (int i = 0; i < kPerThread; ++i) {
        TaskSpec spec = (random() % 8 == 0)
                            ? MakeSpec("sleep", {{"ms", random() % 2}})
                            : MakeSpec("echo", {{"t", t}, {"i", i}});
        if (random() % 16 == 0) spec.run_timeout = absl::Milliseconds(1);
        if (random() % 16 == 0) spec.queue_timeout = absl::Milliseconds(1);
        spec.priority = static_cast<int32_t>(random() % 3);
        absl::StatusOr<TaskSnapshot> task = executor_->Submit(std::move(spec));
        if (!task.ok()) {
          tally->refused.fetch_add(1);
          continue;
        }
        tally->submitted.fetch_add(1);
        mine.push_back(task->id);
        const absl::Status status =
            executor_->OnDone(task->id, [tally](const TaskSnapshot& snapshot) {
              {
                absl::MutexLock lock(&tally->mu);
                ++tally->calls[snapshot.id];
                tally->states[snapshot.id] = snapshot.state;
              }
              tally->done.fetch_add(1);
            });
        EXPECT_TRUE(status.ok()) << status;
        if (random() % 4 == 0) {
          const std::string& victim = mine[random() % mine.size()];
          EXPECT_TRUE(executor_->Cancel(victim).ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(tally->refused.load(), 0);
  ASSERT_EQ(tally->submitted.load(), kThreads * kPerThread);
  ASSERT_TRUE(
      WaitUntil([&] { return tally->done.load() == tally->submitted.load(); },
                absl::Seconds(60)))
      << tally->done.load() << " of " << tally->submitted.load() << " ended";
  EXPECT_TRUE(WaitUntil([&] { return executor_->active_tasks() == 0; }))
      << executor_->active_tasks();
  EXPECT_TRUE(WaitUntil([&] { return StatsOf("default").busy == 0; }));
  EXPECT_EQ(StatsOf("default").queued, 0u);

  absl::MutexLock lock(&tally->mu);
  EXPECT_EQ(tally->calls.size(), static_cast<size_t>(kThreads * kPerThread));
  int succeeded = 0;
  int cancelled = 0;
  for (const auto& [id, calls] : tally->calls) {
    EXPECT_EQ(calls, 1) << id;
    const TaskState state = tally->states[id];
    EXPECT_TRUE(state == TaskState::kSucceeded ||
                state == TaskState::kCancelled || state == TaskState::kTimedOut)
        << id << " ended " << TaskStateName(state);
    absl::StatusOr<TaskSnapshot> stored = executor_->Get(id);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->state, state) << id;
    succeeded += state == TaskState::kSucceeded;
    cancelled += state == TaskState::kCancelled;
  }
  // The mix really exercised both outcomes.
  EXPECT_GT(succeeded, 0);
  EXPECT_GT(cancelled, 0);
}

}  // namespace
}  // namespace remex::executor
