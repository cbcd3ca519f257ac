// Process pools against real worker processes (this test binary re-started
// in worker mode), through the real Executor: what only process pools do
// (crash isolation, retries, graded cancel, limits, recycling, a scrubbed
// environment, no zombies). The contract every pool kind keeps is
// tests/executor/pool_contract_test.cc.
#include "server/process/process_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/executor.h"
#include "server/functions/builtin_functions.h"
#include "tests/executor/executor_test_util.h"
#include "tests/testing/pool_fixture.h"
#include "tests/testing/proc.h"
#include "tests/testing/wait.h"

namespace remex::process {
namespace {

using ::remex::executor::Executor;
using ::remex::executor::ExecutorOptions;
using ::remex::executor::FunctionRegistry;
using ::remex::executor::Json;
using ::remex::executor::PoolConfig;
using ::remex::executor::PoolKind;
using ::remex::executor::TaskContext;
using ::remex::executor::TaskSnapshot;
using ::remex::executor::TaskSpec;
using ::remex::executor::TaskState;
using ::remex::executor::testing::MakeSpec;
using ::remex::testing::ChildrenOf;
using ::remex::testing::IsAlive;
using ::remex::testing::PoolFixture;
using ::remex::testing::WaitUntil;
using ::testing::HasSubstr;

// Appends one byte to args.path and returns the file's new size: how many
// times the task ran, across processes.
int64_t CountRun(const TaskContext& context) {
  const std::string path = context.args()["path"].get<std::string>();
  { std::ofstream(path, std::ios::app) << 'x'; }
  struct stat info {};
  stat(path.c_str(), &info);
  return info.st_size;
}

// The functions of this binary, in the test and in its workers alike.
void RegisterTestFunctions(FunctionRegistry& registry) {
  (void)functions::RegisterBuiltinFunctions({.enable_test_functions = true},
                                            registry);
  // Kills its worker every time.
  (void)registry.Register({.name = "poison", .body = [](TaskContext& context) {
                             CountRun(context);
                             std::abort();
                             return absl::OkStatus();
                           }});
  // Kills its worker on the first run only.
  (void)registry.Register({.name = "flaky", .body = [](TaskContext& context) {
                             const int64_t runs = CountRun(context);
                             if (runs < 2) std::abort();
                             context.set_result(Json{{"runs", runs}});
                             return absl::OkStatus();
                           }});
  (void)registry.Register(
      {.name = "env", .body = [](TaskContext& context) {
         const char* value =
             getenv(context.args()["name"].get<std::string>().c_str());
         context.set_result(value == nullptr ? Json() : Json(value));
         return absl::OkStatus();
       }});
  // Busy until this process has used args.cpu_ms more CPU time: CPU work
  // that does not depend on how loaded the machine is.
  (void)registry.Register(
      {.name = "burn", .body = [](TaskContext& context) {
         // User + system time, the clock RLIMIT_CPU counts (in a VM the
         // scheduler's CPU clock also counts time stolen by the host).
         const auto cpu_now = [] {
           rusage usage{};
           getrusage(RUSAGE_SELF, &usage);
           return absl::DurationFromTimeval(usage.ru_utime) +
                  absl::DurationFromTimeval(usage.ru_stime);
         };
         const absl::Duration end =
             cpu_now() +
             absl::Milliseconds(context.args()["cpu_ms"].get<int64_t>());
         const absl::Duration start = cpu_now();
         while (cpu_now() < end) {
         }
         context.set_result(
             Json{{"pid", static_cast<int>(getpid())},
                  {"cpu_ms", absl::ToInt64Milliseconds(cpu_now() - start)}});
         return absl::OkStatus();
       }});
  // Opens /dev/null args.n times; returns how many opens succeeded.
  (void)registry.Register(
      {.name = "open_files", .body = [](TaskContext& context) {
         std::vector<int> fds;
         for (int i = 0; i < context.args()["n"].get<int>(); ++i) {
           const int fd = open("/dev/null", O_RDONLY);
           if (fd < 0) break;
           fds.push_back(fd);
         }
         for (int fd : fds) close(fd);
         context.set_result(static_cast<int>(fds.size()));
         return absl::OkStatus();
       }});
  (void)registry.Register({.name = "pid", .body = [](TaskContext& context) {
                             context.set_result(static_cast<int>(getpid()));
                             return absl::OkStatus();
                           }});
}

class ProcessPoolTest : public PoolFixture, public ::testing::Test {
 protected:
  ProcessPoolTest() : PoolFixture(RegisterTestFunctions) {}

  void StartProcessPool(int workers, PoolConfig config = {}) {
    config.kind = PoolKind::kProcess;
    config.workers = workers;
    Start(config);
  }

  bool PoolBackToFullSize(int workers) {
    return WaitUntil([&] {
      return Stats().workers == workers &&
             static_cast<int>(ChildrenOf(getpid()).size()) == workers;
    });
  }

  std::vector<pid_t> ChildPids() {
    std::vector<pid_t> pids;
    for (const auto& child : ChildrenOf(getpid())) pids.push_back(child.pid);
    return pids;
  }
};

TEST_F(ProcessPoolTest, TasksRunInWorkerProcessesThatTakeTaskAfterTask) {
  StartProcessPool(1);
  const TaskSnapshot first = Await(Submit(MakeSpec("pid")));
  const TaskSnapshot second = Await(Submit(MakeSpec("pid")));
  ASSERT_EQ(first.state, TaskState::kSucceeded);
  EXPECT_NE(first.outcome->result.get<int>(), getpid());
  EXPECT_EQ(first.outcome->result, second.outcome->result);
  EXPECT_EQ(ChildPids(), std::vector<pid_t>{first.outcome->result.get<int>()});
}

TEST_F(ProcessPoolTest, EachCrashKindEndsWorkerLostWithItsCause) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan reserves terabytes of address space: no RLIMIT_AS, no "oom".
  StartProcessPool(1);
#else
  StartProcessPool(1, {.memory_limit_bytes = int64_t{1} << 30});
#endif
  const std::pair<std::string, std::string> cases[] = {
    {"segv", "killed by signal SIGSEGV"},
    {"abort", "killed by signal SIGABRT"},
    {"exit", "exited with code 3"},
#if !defined(__SANITIZE_ADDRESS__)
    {"oom", "ran out of memory (memory_limit_bytes 1073741824)"},
#endif
  };
  for (const auto& [how, cause] : cases) {
    const TaskSnapshot done =
        Await(Submit(MakeSpec("crash", Json{{"how", how}})));
    EXPECT_EQ(done.state, TaskState::kWorkerLost) << how;
    EXPECT_THAT(done.outcome->error.message, HasSubstr(cause)) << how;
    EXPECT_THAT(done.outcome->error.message, HasSubstr("attempt 1 of 1"));
    EXPECT_EQ(done.outcome->error.code, absl::StatusCode::kAborted);
  }
  EXPECT_EQ(Stats().worker_restarts.at("crash"),
            static_cast<int64_t>(std::size(cases)));
  // The pool replaced the worker and goes on.
  EXPECT_EQ(Await(Submit(MakeSpec("echo"))).state, TaskState::kSucceeded);
  EXPECT_TRUE(PoolBackToFullSize(1));
}

TEST_F(ProcessPoolTest, PoisonTaskRunsExactlyMaxAttemptsTimes) {
  StartProcessPool(2);
  const std::string path = NewPath("poison");
  TaskSpec spec = MakeSpec("poison", Json{{"path", path}});
  spec.max_attempts = 3;
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kWorkerLost);
  EXPECT_EQ(done.attempt, 3);
  EXPECT_THAT(done.outcome->error.message, HasSubstr("attempt 3 of 3"));
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_size, 3);
  EXPECT_EQ(Stats().worker_restarts.at("crash"), 3);
  EXPECT_TRUE(PoolBackToFullSize(2));
}

TEST_F(ProcessPoolTest, TaskWhoseWorkerDiedOnceSucceedsOnItsRetry) {
  StartProcessPool(1);
  TaskSpec spec = MakeSpec("flaky", Json{{"path", NewPath("flaky")}});
  spec.max_attempts = 2;
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.attempt, 2);
  EXPECT_EQ(done.outcome->result, (Json{{"runs", 2}}));
}

TEST_F(ProcessPoolTest, KillNineOfAWorkerLosesOnlyItsTaskAndThePoolRecovers) {
  StartProcessPool(2);
  // Two long tasks hold both workers; 98 short ones wait behind them.
  TaskSpec long_task = MakeSpec("sleep", Json{{"ms", 1500}});
  long_task.priority = 1;
  const std::string a = Submit(long_task);
  const std::string b = Submit(long_task);
  ASSERT_TRUE(WaitForState(a, TaskState::kRunning));
  ASSERT_TRUE(WaitForState(b, TaskState::kRunning));
  std::vector<std::string> short_ids;
  for (int i = 0; i < 98; ++i) {
    short_ids.push_back(Submit(MakeSpec("sleep", Json{{"ms", 5}})));
  }
  const std::vector<pid_t> workers = ChildPids();
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(kill(workers[0], SIGKILL), 0);

  const TaskSnapshot done_a = Await(a);
  const TaskSnapshot done_b = Await(b);
  const TaskSnapshot& lost =
      done_a.state == TaskState::kWorkerLost ? done_a : done_b;
  const TaskSnapshot& kept =
      done_a.state == TaskState::kWorkerLost ? done_b : done_a;
  EXPECT_EQ(lost.state, TaskState::kWorkerLost);
  EXPECT_THAT(lost.outcome->error.message,
              HasSubstr("killed by signal SIGKILL"));
  EXPECT_EQ(kept.state, TaskState::kSucceeded);
  for (const std::string& id : short_ids) {
    EXPECT_EQ(Await(id).state, TaskState::kSucceeded);
  }
  EXPECT_TRUE(PoolBackToFullSize(2));
  EXPECT_FALSE(IsAlive(workers[0]));
  EXPECT_EQ(Stats().worker_restarts.at("crash"), 1);
}

TEST_F(ProcessPoolTest, CancelOfACooperativeSpinStopsItWithoutAKill) {
  StartProcessPool(1);
  const std::string spin = Submit(MakeSpec("spin", Json{{"ms", 20000}}));
  ASSERT_TRUE(WaitForState(spin, TaskState::kRunning));
  ASSERT_EQ(executor_->Cancel(spin)->state, TaskState::kCancelled);
  // The worker got the cancel and is free well within the grace.
  EXPECT_TRUE(
      WaitUntil([&] { return Stats().busy == 0; }, absl::Milliseconds(900)));
  EXPECT_EQ(Stats().worker_restarts.count("cancel"), 0u);
}

TEST_F(ProcessPoolTest, CancelOfATaskThatIgnoresItKillsItsWorkerAfterGrace) {
  constexpr absl::Duration kGrace = absl::Milliseconds(300);
  StartProcessPool(1, {.cancel_grace = kGrace});
  const std::vector<pid_t> before = ChildPids();
  const std::string stuck =
      Submit(MakeSpec("ignore_cancel", Json{{"ms", 20000}}));
  ASSERT_TRUE(WaitForState(stuck, TaskState::kRunning));
  const absl::Time cancelled_at = absl::Now();
  ASSERT_EQ(executor_->Cancel(stuck)->state, TaskState::kCancelled);
  ASSERT_TRUE(
      WaitUntil([&] { return Stats().worker_restarts.count("cancel") == 1; },
                absl::Seconds(5)));
  const absl::Duration killed_after = absl::Now() - cancelled_at;
  EXPECT_GE(killed_after, kGrace);
  // The bound is grace + 100 ms; the margin absorbs a loaded machine.
  EXPECT_LE(killed_after, kGrace + absl::Milliseconds(250));
  EXPECT_FALSE(IsAlive(before.front()));
  EXPECT_TRUE(PoolBackToFullSize(1));
  EXPECT_EQ(Await(stuck).state, TaskState::kCancelled);
  EXPECT_EQ(Await(Submit(MakeSpec("echo"))).state, TaskState::kSucceeded);
}

TEST_F(ProcessPoolTest, RunTimeoutOfATaskThatIgnoresCancelKillsItsWorker) {
  StartProcessPool(1, {.cancel_grace = absl::Milliseconds(100)});
  TaskSpec spec = MakeSpec("ignore_cancel", Json{{"ms", 20000}});
  spec.run_timeout = absl::Milliseconds(200);
  const TaskSnapshot done = Await(Submit(spec));
  EXPECT_EQ(done.state, TaskState::kTimedOut);
  EXPECT_TRUE(
      WaitUntil([&] { return Stats().worker_restarts.count("timeout") == 1; }));
  EXPECT_EQ(Await(Submit(MakeSpec("echo"))).state, TaskState::kSucceeded);
}

#if !defined(__SANITIZE_ADDRESS__)
TEST_F(ProcessPoolTest, MemoryLimitEndsAGreedyTaskAndSparesTheNext) {
  StartProcessPool(1, {.memory_limit_bytes = 512 << 20});
  const TaskSnapshot greedy =
      Await(Submit(MakeSpec("crash", Json{{"how", "oom"}})));
  EXPECT_EQ(greedy.state, TaskState::kWorkerLost);
  EXPECT_THAT(greedy.outcome->error.message,
              HasSubstr("ran out of memory (memory_limit_bytes 536870912)"));
  EXPECT_EQ(Await(Submit(MakeSpec("primes", Json{{"n", 1000000}}))).state,
            TaskState::kSucceeded);
}
#endif

TEST_F(ProcessPoolTest, CpuLimitEndsATaskThatBurnsPastIt) {
  StartProcessPool(1, {.cpu_limit_seconds = 1});
  const TaskSnapshot done = Await(
      Submit(MakeSpec("burn", Json{{"cpu_ms", 5000}})), absl::Seconds(60));
  EXPECT_EQ(done.state, TaskState::kWorkerLost)
      << done.outcome->result.dump() << " after "
      << absl::FormatDuration(done.finished_at - done.started_at);
  EXPECT_THAT(done.outcome->error.message,
              HasSubstr("exceeded its CPU limit (cpu_limit_seconds 1)"));
  // The budget is per task: three tasks of 0.4 s each on one worker are
  // fine, though together they use more than 1 s.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Await(Submit(MakeSpec("burn", Json{{"cpu_ms", 400}})),
                    absl::Seconds(60))
                  .state,
              TaskState::kSucceeded);
  }
}

TEST_F(ProcessPoolTest, MaxOpenFilesLimitsEachWorker) {
  StartProcessPool(1, {.max_open_files = 32});
  const TaskSnapshot done =
      Await(Submit(MakeSpec("open_files", Json{{"n", 100}})));
  ASSERT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_LT(done.outcome->result.get<int>(), 32);
  EXPECT_GT(done.outcome->result.get<int>(), 0);
}

TEST_F(ProcessPoolTest, WorkersAreRecycledAfterMaxTasksPerWorker) {
  StartProcessPool(1, {.max_tasks_per_worker = 2});
  std::vector<int> pids;
  for (int i = 0; i < 5; ++i) {
    const TaskSnapshot done = Await(Submit(MakeSpec("pid")));
    ASSERT_EQ(done.state, TaskState::kSucceeded);
    pids.push_back(done.outcome->result.get<int>());
  }
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
  EXPECT_EQ(pids[2], pids[3]);
  EXPECT_NE(pids[3], pids[4]);
  EXPECT_TRUE(WaitUntil([&] {
    return Stats().worker_restarts.count("recycle") == 1 &&
           Stats().worker_restarts.at("recycle") == 2;
  }));
}

TEST_F(ProcessPoolTest, WorkersGetAScrubbedEnvironment) {
  setenv("REMEX_TEST_SECRET", "hunter2", 1);
  StartProcessPool(1);
  unsetenv("REMEX_TEST_SECRET");
  EXPECT_EQ(Await(Submit(MakeSpec("env", Json{{"name", "REMEX_TEST_SECRET"}})))
                .outcome->result,
            Json());
  EXPECT_NE(
      Await(Submit(MakeSpec("env", Json{{"name", "PATH"}}))).outcome->result,
      Json());
}

TEST_F(ProcessPoolTest, ShutdownKillsAndReapsEveryWorker) {
  StartProcessPool(3);
  const std::string running =
      Submit(MakeSpec("ignore_cancel", Json{{"ms", 20000}}));
  ASSERT_TRUE(WaitForState(running, TaskState::kRunning));
  const std::vector<pid_t> workers = ChildPids();
  ASSERT_EQ(workers.size(), 3u);
  executor_.reset();
  EXPECT_TRUE(ChildrenOf(getpid()).empty());  // no zombies either
  for (pid_t pid : workers) EXPECT_FALSE(IsAlive(pid)) << pid;
}

TEST_F(ProcessPoolTest, WorkersThatCannotStartFailThePoolsCreation) {
  ExecutorOptions options;
  options.pools.push_back(
      {.name = "p", .kind = PoolKind::kProcess, .workers = 1});
  options.pool_factories[PoolKind::kProcess] =
      ProcessPoolFactory({.executable = "/bin/false", .argv = {"false"}});
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(options, registry_);
  ASSERT_FALSE(executor.ok());
  EXPECT_THAT(executor.status().message(),
              HasSubstr("worker exited with code 1 before it was ready"));
  EXPECT_TRUE(ChildrenOf(getpid()).empty());
}

TEST(ProcessPoolCreateTest, WithoutAFactoryProcessPoolsAreUnimplemented) {
  FunctionRegistry registry;
  ExecutorOptions options;
  options.pools.push_back({.name = "p", .kind = PoolKind::kProcess});
  EXPECT_TRUE(
      absl::IsUnimplemented(Executor::Create(options, registry).status()));
}

}  // namespace
}  // namespace remex::process

int main(int argc, char** argv) {
  return remex::testing::PoolTestMain(argc, argv,
                                      remex::process::RegisterTestFunctions);
}
