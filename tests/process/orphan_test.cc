// No child outlives the server: command functions on a thread pool and on a
// process pool, its workers, and what a stubborn command starts, checked
// through /proc after kill -9 of the real remex-server, after a shutdown
// that gives up on a command, and after a process pool kills the worker of
// a cancelled command. Each test gives its /bin/sleep a duration no other
// process has, to find exactly its processes.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.pb.h"
#include "tests/testing/executor_calls.h"
#include "tests/testing/proc.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::remex::testing::ChildrenOf;
using ::remex::testing::ExecutorCalls;
using ::remex::testing::IsAlive;
using ::remex::testing::ProcessesWithArgument;
using ::remex::testing::WaitUntil;
using ::remex::v1::Task;

// How long a killed process gets to disappear from /proc.
constexpr absl::Duration kGone = absl::Seconds(10);

// The process pool keeps its default cancel_grace (1 s), shorter than the
// commands' own: a cancel ends with the pool killing the worker.
//
// The commands start `/bin/sleep S` only once their stdin closes,
// which the server does after it has told the janitor of them: a test that
// waits for the exec (AwaitSleepExec) knows the janitor does. (A kill -9 in the
// microseconds between posix_spawn and that message would leak the command: a
// known window that these tests do not cover.)
constexpr char kConfig[] = R"(
pools:
  - {name: default, kind: thread, workers: 2}
  - {name: procs, kind: process, workers: 1}
functions:
  - name: sleep_threads
    command: [/bin/sh, -c, "cat >/dev/null; exec /bin/sleep {s}"]
  - name: sleep_procs
    command: [/bin/sh, -c, "cat >/dev/null; exec /bin/sleep {s}"]
    pool: procs
  - name: stubborn_threads
    command: [/bin/sh, -c, "trap '' TERM; cat >/dev/null; /bin/sleep {s}"]
    cancel_grace: 60s
  - name: stubborn_procs
    command: [/bin/sh, -c, "trap '' TERM; cat >/dev/null; /bin/sleep {s}"]
    pool: procs
    cancel_grace: 60s
)";

// Tests that kill the server wait for its exit themselves; a test that
// fails early leaves it to ServerTest's shutdown.
class OrphanTest : public ::remex::testing::ServerTest {
 protected:
  OrphanTest() : ServerTest(absl::Seconds(20)) {}

  void StartServer() {
    ASSERT_NO_FATAL_FAILURE(
        ServerTest::StartServer({"--config", WriteFile("config.yaml", kConfig),
                                 "--shutdown-grace", "1s"}));
    calls_ = std::make_unique<ExecutorCalls>(server().address());
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
    return calls_->Submit(request);
  }

  Task Await(const std::string& id) { return calls_->Await(id); }
  void Cancel(const std::string& id) { calls_->Cancel(id); }

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

  // Waits until the sleep_* command `pid` has exec'd /bin/sleep.
  static void AwaitSleepExec(pid_t pid) {
    EXPECT_TRUE(WaitUntil([pid] {
      std::ifstream comm(absl::StrCat("/proc/", pid, "/comm"));
      std::string name;
      std::getline(comm, name);
      return name == "sleep";
    })) << pid
        << " never exec'd /bin/sleep";
  }

  // The server's detached janitor (not a child of the server).
  std::vector<pid_t> Janitor() {
    return ProcessesWithArgument(
        absl::StrCat("--remex-janitor=", server_pid(), ":detached"));
  }

  void KillServer() {
    ASSERT_EQ(server().Signal(SIGKILL), 0);
    const absl::StatusOr<int> code = WaitForExit(absl::Seconds(15));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 128 + SIGKILL);
  }

  static void ExpectAllGone(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) {
      EXPECT_TRUE(WaitUntil([&] { return !IsAlive(pid); }, kGone))
          << pid << " outlived the server";
    }
  }

  std::unique_ptr<ExecutorCalls> calls_;
};

TEST_F(OrphanTest, KillNineLeavesNoCommandOfAThreadPool) {
  StartServer();
  const std::string seconds = UniqueDuration(1);
  Submit("sleep_threads", seconds);
  const std::vector<pid_t> command = AwaitCommand(seconds, 1);
  ASSERT_EQ(command.size(), 1u);
  AwaitSleepExec(command[0]);
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
  ASSERT_EQ(command.size(), 1u);
  AwaitSleepExec(command[0]);
  std::vector<pid_t> workers;
  for (const auto& child : ChildrenOf(server_pid())) {
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
  const std::vector<testing::ProcEntry> workers = ChildrenOf(server_pid());
  ASSERT_EQ(workers.size(), 1u);

  Cancel(task.id());
  EXPECT_EQ(Await(task.id()).state(), v1::CANCELLED);
  // At the pool's cancel_grace the worker is killed, and its command with
  // it, long before the command's own grace (60 s).
  ExpectAllGone(command);
  EXPECT_FALSE(IsAlive(workers[0].pid));
  EXPECT_TRUE(IsAlive(server_pid()));
}

TEST_F(OrphanTest, ATimedOutStubbornCommandDiesWithTheWorkerThePoolKills) {
  StartServer();
  const std::string seconds = UniqueDuration(6);
  const Task task =
      Submit("stubborn_procs", seconds, /*run_timeout=*/absl::Seconds(1));
  const std::vector<pid_t> command = AwaitCommand(seconds, 2);

  EXPECT_EQ(Await(task.id()).state(), v1::TIMED_OUT);
  ExpectAllGone(command);
  EXPECT_TRUE(IsAlive(server_pid()));
}

TEST_F(OrphanTest, AShutdownThatGivesUpOnAStubbornCommandLeavesNothing) {
  StartServer();
  const std::string seconds = UniqueDuration(7);
  Submit("stubborn_threads", seconds);
  const std::vector<pid_t> command = AwaitCommand(seconds, 2);
  const std::vector<pid_t> janitor = Janitor();

  ASSERT_EQ(server().Signal(SIGTERM), 0);
  ExpectExitsZero(absl::Seconds(20));
  ExpectAllGone(command);
  ExpectAllGone(janitor);
}

}  // namespace
}  // namespace remex
