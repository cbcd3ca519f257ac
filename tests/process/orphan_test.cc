// No child outlives the server: command functions on a thread pool and on a
// process pool, its workers, and what a stubborn command starts, checked
// through /proc after kill -9 of the real remex-server, after a shutdown
// that gives up on a command, and after a process pool kills the worker of
// a cancelled command. Each test gives its /bin/sleep a duration no other
// process has, to find exactly its processes.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.grpc.pb.h"
#include "tests/testing/proc.h"
#include "tests/testing/server_process.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::remex::testing::ChildrenOf;
using ::remex::testing::IsAlive;
using ::remex::testing::ProcessesWithArgument;
using ::remex::testing::ServerProcess;
using ::remex::testing::WaitUntil;
using ::remex::v1::Executor;
using ::remex::v1::Task;

constexpr absl::Duration kRpcDeadline = absl::Seconds(20);
// How long a killed process gets to disappear from /proc.
constexpr absl::Duration kGone = absl::Seconds(10);

// The process pool keeps its default cancel_grace (1 s), shorter than the
// commands' own: a cancel ends with the pool killing the worker.
constexpr char kConfig[] = R"(
pools:
  - {name: default, kind: thread, workers: 2}
  - {name: procs, kind: process, workers: 1}
functions:
  - name: sleep_threads
    command: [/bin/sleep, "{s}"]
  - name: sleep_procs
    command: [/bin/sleep, "{s}"]
    pool: procs
  - name: stubborn_threads
    command: [/bin/sh, -c, "trap '' TERM; /bin/sleep {s}"]
    cancel_grace: 60s
  - name: stubborn_procs
    command: [/bin/sh, -c, "trap '' TERM; /bin/sleep {s}"]
    pool: procs
    cancel_grace: 60s
)";

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
}

class OrphanTest : public ::testing::Test {
 protected:
  ~OrphanTest() override {
    if (!config_path_.empty()) std::remove(config_path_.c_str());
  }

  void TearDown() override {
    if (HasFailure() && server_ != nullptr) {
      std::cerr << "remex-server output:\n" << server_->ServerOutput();
    }
  }

  void StartServer() {
    config_path_ = absl::StrCat(::testing::TempDir(), "remex_orphan_test_",
                                getpid(), ".yaml");
    std::ofstream(config_path_) << kConfig;
    auto server = ServerProcess::Start(
        {"--config", config_path_, "--shutdown-grace", "1s"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = Executor::NewStub(grpc::CreateChannel(
        server_->address(), grpc::InsecureChannelCredentials()));
  }

  // A sleep duration (seconds, fractional) that no other process uses.
  static std::string UniqueDuration(int test) {
    return absl::StrCat(3000 + test, ".", getpid());
  }

  Task Submit(absl::string_view function, const std::string& seconds,
              absl::Duration run_timeout = absl::ZeroDuration()) {
    v1::SubmitRequest request;
    request.set_function(std::string(function));
    (*request.mutable_args()->mutable_struct_value()->mutable_fields())["s"]
        .set_string_value(seconds);
    if (run_timeout > absl::ZeroDuration()) {
      request.mutable_run_timeout()->set_seconds(
          absl::ToInt64Seconds(run_timeout));
    }
    grpc::ClientContext context;
    SetDeadline(context);
    Task task;
    const grpc::Status status = stub_->Submit(&context, request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  Task Await(const std::string& id) {
    v1::AwaitRequest request;
    request.set_id(id);
    request.mutable_timeout()->set_seconds(30);
    grpc::ClientContext context;
    SetDeadline(context);
    Task task;
    const grpc::Status status = stub_->Await(&context, request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  void Cancel(const std::string& id) {
    v1::CancelRequest request;
    request.set_id(id);
    grpc::ClientContext context;
    SetDeadline(context);
    v1::Task task;
    const grpc::Status status = stub_->Cancel(&context, request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // Waits until the command sleeping `seconds` runs (its sleep, and the
  // shell of a stubborn one); returns its processes.
  std::vector<pid_t> AwaitCommand(const std::string& seconds,
                                  size_t processes) {
    std::vector<pid_t> found;
    EXPECT_TRUE(WaitUntil([&] {
      found = ProcessesWithArgument(seconds);
      return found.size() == processes;
    })) << "found "
        << found.size() << " processes sleeping " << seconds;
    return found;
  }

  // The server's detached janitor (not a child of the server).
  std::vector<pid_t> Janitor() {
    return ProcessesWithArgument(
        absl::StrCat("--remex-janitor=", server_->pid(), ":detached"));
  }

  void KillServer() {
    ASSERT_EQ(server_->Signal(SIGKILL), 0);
    const absl::StatusOr<int> code = server_->Wait(absl::Seconds(15));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 128 + SIGKILL);
  }

  static void ExpectAllGone(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) {
      EXPECT_TRUE(WaitUntil([&] { return !IsAlive(pid); }, kGone))
          << pid << " outlived the server";
    }
  }

  std::string config_path_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Executor::Stub> stub_;
};

TEST_F(OrphanTest, KillNineLeavesNoCommandOfAThreadPool) {
  StartServer();
  const std::string seconds = UniqueDuration(1);
  Submit("sleep_threads", seconds);
  const std::vector<pid_t> command = AwaitCommand(seconds, 1);
  const std::vector<pid_t> janitor = Janitor();
  ASSERT_EQ(janitor.size(), 1u);

  KillServer();
  ExpectAllGone(command);
  ExpectAllGone(janitor);  // its work done, it exits
}

TEST_F(OrphanTest, KillNineLeavesNoWorkerAndNoCommandOfAProcessPool) {
  StartServer();
  const std::string seconds = UniqueDuration(2);
  Submit("sleep_procs", seconds);
  const std::vector<pid_t> command = AwaitCommand(seconds, 1);
  std::vector<pid_t> workers;
  for (const auto& child : ChildrenOf(server_->pid())) {
    workers.push_back(child.pid);
  }
  ASSERT_EQ(workers.size(), 1u) << "one worker, and no janitor among them";

  KillServer();
  ExpectAllGone(command);
  ExpectAllGone(workers);
  ExpectAllGone(Janitor());
}

TEST_F(OrphanTest, KillNineLeavesNoStubbornCommandNorItsGrandchild) {
  StartServer();
  const std::string on_threads = UniqueDuration(3);
  const std::string on_procs = UniqueDuration(4);
  Submit("stubborn_threads", on_threads);
  Submit("stubborn_procs", on_procs);
  // The shell, and the sleep it started.
  const std::vector<pid_t> threads_command = AwaitCommand(on_threads, 2);
  const std::vector<pid_t> procs_command = AwaitCommand(on_procs, 2);

  KillServer();
  ExpectAllGone(threads_command);
  ExpectAllGone(procs_command);
}

TEST_F(OrphanTest, ACancelledStubbornCommandDiesWithTheWorkerThePoolKills) {
  StartServer();
  const std::string seconds = UniqueDuration(5);
  const Task task = Submit("stubborn_procs", seconds);
  const std::vector<pid_t> command = AwaitCommand(seconds, 2);
  const std::vector<testing::ProcEntry> workers =
      ChildrenOf(server_->pid());
  ASSERT_EQ(workers.size(), 1u);

  Cancel(task.id());
  EXPECT_EQ(Await(task.id()).state(), v1::CANCELLED);
  // At the pool's cancel_grace the worker is killed, and its command with
  // it, long before the command's own grace (60 s).
  ExpectAllGone(command);
  EXPECT_FALSE(IsAlive(workers[0].pid));
  EXPECT_TRUE(IsAlive(server_->pid()));
}

TEST_F(OrphanTest, ATimedOutStubbornCommandDiesWithTheWorkerThePoolKills) {
  StartServer();
  const std::string seconds = UniqueDuration(6);
  const Task task =
      Submit("stubborn_procs", seconds, /*run_timeout=*/absl::Seconds(1));
  const std::vector<pid_t> command = AwaitCommand(seconds, 2);

  EXPECT_EQ(Await(task.id()).state(), v1::TIMED_OUT);
  ExpectAllGone(command);
  EXPECT_TRUE(IsAlive(server_->pid()));
}

TEST_F(OrphanTest, AShutdownThatGivesUpOnAStubbornCommandLeavesNothing) {
  StartServer();
  const std::string seconds = UniqueDuration(7);
  Submit("stubborn_threads", seconds);
  const std::vector<pid_t> command = AwaitCommand(seconds, 2);
  const std::vector<pid_t> janitor = Janitor();

  ASSERT_EQ(server_->Signal(SIGTERM), 0);
  const absl::StatusOr<int> code = server_->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  ExpectAllGone(command);
  ExpectAllGone(janitor);
}

}  // namespace
}  // namespace remex
