// RunCommand alone (no server): how children end, what is captured, and
// that a cancel ends them on time, SIGKILL only after the grace.
#include "server/process/command_runner.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/executor/cancellation.h"
#include "tests/testing/wait.h"

namespace remex::process {
namespace {

using ::remex::executor::CancellationToken;

CommandRun Command(std::vector<std::string> argv) {
  return {.argv = std::move(argv), .env = {"PATH=/usr/bin:/bin"}};
}

CommandResult RunToEnd(const CommandRun& run) {
  CancellationToken never;
  absl::StatusOr<CommandResult> result = RunCommand(run, never);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CommandResult();
}

TEST(CommandRunnerTest, CapturesStdoutStderrAndTheExitCode) {
  const CommandResult result = RunToEnd(
      Command({"/bin/sh", "-c", "printf out; printf err >&2; exit 7"}));
  EXPECT_EQ(result.exit_code, 7);
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.stdout_data, "out");
  EXPECT_EQ(result.stderr_data, "err");
  EXPECT_FALSE(result.cancelled);
}

TEST(CommandRunnerTest, ReportsTheSignalThatEndedTheChild) {
  const CommandResult result =
      RunToEnd(Command({"/bin/sh", "-c", "kill -SEGV $$"}));
  EXPECT_EQ(result.signal, SIGSEGV);
  EXPECT_EQ(result.exit_code, -1);
}

TEST(CommandRunnerTest, FeedsLargeInputAndBoundsLargeOutput) {
  CommandRun run = Command({"/bin/cat"});
  run.stdin_data = std::string(3 << 20, 'z');
  run.max_output_bytes = 1 << 20;
  const CommandResult result = RunToEnd(run);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stdout_data, std::string(1 << 20, 'z'));
  EXPECT_TRUE(result.stdout_truncated);
  EXPECT_FALSE(result.stderr_truncated);
}

TEST(CommandRunnerTest, AChildThatReadsNoInputIsNotAnError) {
  CommandRun run = Command({"/bin/true"});
  run.stdin_data = std::string(4 << 20, 'x');
  EXPECT_EQ(RunToEnd(run).exit_code, 0);
}

TEST(CommandRunnerTest, RunsInTheWorkingDirectoryWithOnlyTheGivenEnv) {
  CommandRun run = Command({"/bin/sh", "-c", "pwd; echo \"$HOME|$A\""});
  run.env.push_back("A=b");
  run.working_dir = "/usr";
  EXPECT_EQ(RunToEnd(run).stdout_data, "/usr\n|b\n");
}

TEST(CommandRunnerTest, AnExecutableThatCannotStartIsAnError) {
  CancellationToken never;
  absl::StatusOr<CommandResult> result =
      RunCommand(Command({"/no/such/tool"}), never);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
}

// Runs `run` on a thread, cancels it once `ready()` holds (polled, at most
// 20 s), and returns how long the run took after the cancel.
absl::Duration CancelWhenReady(const CommandRun& run,
                               const std::function<bool()>& ready,
                               CommandResult& result) {
  CancellationToken token;
  absl::Notification done;
  std::thread runner([&] {
    absl::StatusOr<CommandResult> ran = RunCommand(run, token);
    EXPECT_TRUE(ran.ok()) << ran.status();
    if (ran.ok()) result = *ran;
    done.Notify();
  });
  EXPECT_TRUE(remex::testing::WaitUntil(ready, absl::Seconds(20)));
  const absl::Time cancelled_at = absl::Now();
  token.Cancel();
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  const absl::Duration took = absl::Now() - cancelled_at;
  runner.join();
  return took;
}

TEST(CommandRunnerTest, CancelEndsAChildWithSigtermAtOnce) {
  CommandRun run = Command({"/bin/sleep", "30"});
  run.cancel_grace = absl::Seconds(10);
  CommandResult result;
  const absl::Duration took = CancelWhenReady(
      run, [] { return true; }, result);
  EXPECT_TRUE(result.cancelled);
  EXPECT_EQ(result.signal, SIGTERM);
  EXPECT_LT(took, absl::Seconds(5)) << "no need to wait for the grace";
}

TEST(CommandRunnerTest, CancelKillsAChildIgnoringSigtermAfterTheGrace) {
  // The shell touches `marker` once it ignores SIGTERM.
  const std::string marker =
      absl::StrCat(::testing::TempDir(), "/remex_runner_", getpid());
  std::remove(marker.c_str());
  CommandRun run = Command(
      {"/bin/sh", "-c", "trap '' TERM; : > \"$0\"; /bin/sleep 30", marker});
  run.cancel_grace = absl::Milliseconds(700);
  CommandResult result;
  const absl::Duration took = CancelWhenReady(
      run, [&] { return access(marker.c_str(), F_OK) == 0; }, result);
  std::remove(marker.c_str());
  EXPECT_TRUE(result.cancelled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_GE(took, absl::Milliseconds(700)) << "SIGKILL only after the grace";
  EXPECT_LT(took, absl::Seconds(10));
}

}  // namespace
}  // namespace remex::process
