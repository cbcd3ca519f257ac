// Process pools seen from a client: the real remex-server over gRPC, its
// worker processes observed and killed through /proc.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/testing/executor_calls.h"
#include "tests/testing/proc.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::remex::testing::ChildrenOf;
using ::remex::testing::ExecutorCalls;
using ::remex::testing::IsAlive;
using ::remex::testing::kRpcDeadline;
using ::remex::testing::ProcEntry;
using ::remex::testing::ServerProcess;
using ::remex::testing::SetDeadline;
using ::remex::testing::WaitUntil;
using ::remex::v1::State;
using ::remex::v1::Task;
using ::testing::HasSubstr;

std::vector<pid_t> Pids(const std::vector<ProcEntry>& all) {
  std::vector<pid_t> pids;
  for (const auto& entry : all) pids.push_back(entry.pid);
  return pids;
}

class ProcessPoolRpcTest : public ::remex::testing::ServerTest {
 protected:
  ProcessPoolRpcTest() : ServerTest(absl::Seconds(15)) {
    ::remex::testing::LetSegvKillChildren();
  }

  // Starts remex-server with `config_json` (empty: the built-in config).
  void StartServer(absl::string_view config_json) {
    std::vector<std::string> args = {"--enable-test-functions",
                                     "--shutdown-grace", "1s"};
    if (!config_json.empty()) {
      args.insert(args.end(),
                  {"--config", WriteFile("config.json", config_json)});
    }
    ASSERT_NO_FATAL_FAILURE(ServerTest::StartServer(std::move(args)));
    calls_ = std::make_unique<ExecutorCalls>(server().address());
  }

  Task Submit(absl::string_view function, absl::string_view args_json,
              absl::string_view pool = "process", int priority = 0) {
    v1::SubmitRequest request;
    request.set_function(std::string(function));
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(
                    std::string(args_json), request.mutable_args())
                    .ok());
    request.set_pool(std::string(pool));
    request.set_priority(priority);
    return calls_->Submit(request);
  }

  Task Await(const std::string& id,
             absl::Duration timeout = absl::Seconds(30)) {
    return calls_->Await(id, timeout);
  }

  State GetState(const std::string& id) { return calls_->GetState(id); }

  v1::ListFunctionsResponse ListFunctions() {
    grpc::ClientContext context;
    SetDeadline(context, kRpcDeadline);
    v1::ListFunctionsResponse response;
    EXPECT_TRUE(
        calls_->stub()
            .ListFunctions(&context, v1::ListFunctionsRequest(), &response)
            .ok());
    return response;
  }

  // The server's live children, and a check that none is a zombie.
  std::vector<pid_t> Workers() {
    std::vector<ProcEntry> children = ChildrenOf(server_pid());
    for (const auto& child : children) {
      EXPECT_NE(child.state, 'Z') << "zombie worker " << child.pid;
    }
    return Pids(children);
  }

  // Starts the server with two process workers and a one-minute task of
  // `function` running on one; sets `workers` to their pids and closes the
  // connection (for a test that stops the server).
  void StartWithALongTaskRunning(absl::string_view function,
                                 std::vector<pid_t>& workers);

  bool PoolBackTo(size_t workers) {
    return WaitUntil([&] { return Workers().size() == workers; });
  }

  std::unique_ptr<ExecutorCalls> calls_;

 private:
  // The server waits for open connections (up to 250 ms) when it stops.
  void CloseConnections() override { calls_.reset(); }
};

#if defined(__SANITIZE_ADDRESS__)
// ASan reserves terabytes of address space: no RLIMIT_AS, no "oom" crash.
constexpr bool kMemoryLimits = false;
constexpr absl::string_view kTwoWorkers =
    R"({"pools":[{"name":"default","kind":"thread","workers":2},
                 {"name":"process","kind":"process","workers":2}]})";
#else
constexpr bool kMemoryLimits = true;
constexpr absl::string_view kTwoWorkers =
    R"({"pools":[{"name":"default","kind":"thread","workers":2},
                 {"name":"process","kind":"process","workers":2,
                  "memory_limit_bytes":1073741824}]})";
#endif

void ProcessPoolRpcTest::StartWithALongTaskRunning(
    absl::string_view function, std::vector<pid_t>& workers) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kTwoWorkers));
  const Task running = Submit(function, R"({"ms":60000})");
  ASSERT_TRUE(WaitUntil([&] { return GetState(running.id()) == v1::RUNNING; }));
  workers = Workers();
  ASSERT_EQ(workers.size(), 2u);
  calls_.reset();
}

TEST_F(ProcessPoolRpcTest, KillNineOfAWorkerMidStreamLosesOnlyItsTask) {
  StartServer(kTwoWorkers);
  ASSERT_EQ(Workers().size(), 2u);
  // Two long tasks hold both workers while 98 short ones queue behind them:
  // whichever worker is killed is running one of the two.
  const Task a = Submit("sleep", R"({"ms":1500})", "process", 1);
  const Task b = Submit("sleep", R"({"ms":1500})", "process", 1);
  ASSERT_TRUE(WaitUntil([&] {
    return GetState(a.id()) == v1::RUNNING && GetState(b.id()) == v1::RUNNING;
  }));
  std::vector<std::string> ids = {a.id(), b.id()};
  for (int i = 0; i < 98; ++i)
    ids.push_back(Submit("sleep", R"({"ms":5})").id());
  const pid_t victim = Workers().front();
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  int lost = 0;
  for (const std::string& id : ids) {
    const Task done = Await(id);
    if (done.state() == v1::WORKER_LOST) {
      ++lost;
      EXPECT_TRUE(id == a.id() || id == b.id()) << id;
      EXPECT_THAT(done.error().message(), HasSubstr("SIGKILL"));
    } else {
      EXPECT_EQ(done.state(), v1::SUCCEEDED) << id;
    }
  }
  EXPECT_EQ(lost, 1);
  EXPECT_TRUE(PoolBackTo(2));
  EXPECT_FALSE(IsAlive(victim));
  EXPECT_EQ(Await(Submit("echo", R"({"ok":true})").id()).state(),
            v1::SUCCEEDED);
}

TEST_F(ProcessPoolRpcTest, CrashesEndWorkerLostAndTheServerGoesOn) {
  StartServer(kTwoWorkers);
  const std::pair<std::string, std::string> cases[] = {
      {"segv", "worker killed by signal SIGSEGV"},
      {"abort", "worker killed by signal SIGABRT"},
      {"exit", "worker exited with code 3"},
      {"oom", "worker ran out of memory (memory_limit_bytes 1073741824)"}};
  for (const auto& [how, cause] : cases) {
    if (how == "oom" && !kMemoryLimits) continue;
    const Task done =
        Await(Submit("crash", absl::StrCat(R"({"how":")", how, R"("})")).id());
    EXPECT_EQ(done.state(), v1::WORKER_LOST) << how;
    EXPECT_THAT(done.error().message(), HasSubstr(cause)) << how;
  }
  EXPECT_TRUE(PoolBackTo(2));
  EXPECT_EQ(Await(Submit("primes", R"({"n":1000})").id()).state(),
            v1::SUCCEEDED);
}

TEST_F(ProcessPoolRpcTest, PoisonTaskRunsMaxAttemptsTimesThenEnds) {
  StartServer(kTwoWorkers);
  v1::SubmitRequest request;
  request.set_function("crash");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"how":"abort"})", request.mutable_args())
                  .ok());
  request.set_pool("process");
  request.set_max_attempts(3);
  grpc::ClientContext context;
  SetDeadline(context, kRpcDeadline);
  Task task;
  ASSERT_TRUE(calls_->stub().Submit(&context, request, &task).ok());
  const Task done = Await(task.id());
  EXPECT_EQ(done.state(), v1::WORKER_LOST);
  EXPECT_EQ(done.attempt(), 3);
  EXPECT_THAT(done.error().message(), HasSubstr("attempt 3 of 3"));
  EXPECT_TRUE(PoolBackTo(2));
}

TEST_F(ProcessPoolRpcTest, DefaultConfigServesAProcessPoolSizedToTheMachine) {
  StartServer("");
  const v1::ListFunctionsResponse functions = ListFunctions();
  bool found = false;
  for (const v1::PoolInfo& pool : functions.pools()) {
    if (pool.name() != "process") continue;
    found = true;
    EXPECT_EQ(pool.kind(), "process");
    EXPECT_EQ(pool.workers(),
              static_cast<int>(std::thread::hardware_concurrency()));
  }
  EXPECT_TRUE(found);
  const Task done = Await(Submit("sha256", R"({"text":"abc"})").id());
  EXPECT_EQ(done.state(), v1::SUCCEEDED);
  EXPECT_EQ(done.result().string_value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(ProcessPoolRpcTest, CleanShutdownLeavesNoWorkerBehind) {
  std::vector<pid_t> workers;
  ASSERT_NO_FATAL_FAILURE(StartWithALongTaskRunning("ignore_cancel", workers));
  ASSERT_EQ(server().Signal(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(ExpectExitsZero(absl::Seconds(15)));
  for (pid_t pid : workers) EXPECT_FALSE(IsAlive(pid)) << pid;
}

TEST_F(ProcessPoolRpcTest, WorkersDieWithAKilledServer) {
  std::vector<pid_t> workers;
  ASSERT_NO_FATAL_FAILURE(StartWithALongTaskRunning("sleep", workers));
  ASSERT_EQ(server().Signal(SIGKILL), 0);
  (void)WaitForExit(absl::Seconds(15));
  // PR_SET_PDEATHSIG: no orphan outlives the server.
  EXPECT_TRUE(WaitUntil([&] {
    for (pid_t pid : workers) {
      if (IsAlive(pid)) return false;
    }
    return true;
  }));
}

TEST_F(ProcessPoolRpcTest, ProcessLimitOnAThreadPoolIsAConfigError) {
  auto server = ServerProcess::Start(
      {"--config",
       WriteFile(
           "bad.json",
           R"({"pools":[{"name":"default","memory_limit_bytes":1073741824}]})")});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("only process pools take it"));
}

}  // namespace
}  // namespace remex
