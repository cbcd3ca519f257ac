// RunCommand alone (no server): how children end, what is captured, and
// that a cancel ends them on time, SIGKILL only after the grace.
#include "server/process/command_runner.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/executor/cancellation.h"
#include "tests/testing/temp_dir.h"
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

// The entries of `dir`.
std::vector<std::string> Entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename());
  }
  return names;
}

TEST(CommandRunnerTest, APrivateDirectoryGoesWithAllTheCommandLeftInIt) {
  remex::testing::TempDir parent;
  remex::testing::TempDir outside;
  const std::string kept = outside.Write("kept.txt", "still here");
  // Nested directories, one without permissions, and symbolic links out of
  // the directory, which its removal must not follow.
  CommandRun run =
      Command({"/bin/sh", "-c",
               "pwd; stat -c %a .; mkdir -p a/b/c; echo x > a/b/c/f; "
               "ln -s \"$0\" file_link; ln -s \"$1\" dir_link; "
               "mkdir locked; touch locked/f; chmod 000 locked",
               kept, outside.path().string()});
  run.private_dir_in = parent.path();
  const CommandResult result = RunToEnd(run);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_data;
  const std::string prefix = (parent.path() / "remex-cmd-").string();
  EXPECT_EQ(result.stdout_data.substr(0, prefix.size()), prefix)
      << result.stdout_data;
  EXPECT_TRUE(absl::EndsWith(result.stdout_data, "\n700\n"))
      << result.stdout_data;
  EXPECT_TRUE(Entries(parent.path()).empty()) << "the directory is still there";
  EXPECT_TRUE(std::filesystem::exists(kept));
  EXPECT_EQ(Entries(outside.path()), std::vector<std::string>{"kept.txt"});
}

TEST(CommandRunnerTest, EachRunGetsItsOwnDirectory) {
  remex::testing::TempDir parent;
  CommandRun run = Command({"/bin/pwd"});
  run.private_dir_in = parent.path();
  const std::string first = RunToEnd(run).stdout_data;
  const std::string second = RunToEnd(run).stdout_data;
  EXPECT_FALSE(first.empty());
  EXPECT_NE(first, second);
}

TEST(CommandRunnerTest, ACancelledRunsPrivateDirectoryIsRemoved) {
  remex::testing::TempDir parent;
  CommandRun run = Command({"/bin/sh", "-c", ": > marker; /bin/sleep 30"});
  run.private_dir_in = parent.path();
  CommandResult result;
  CancelWhenReady(
      run,
      [&] {
        for (const auto& entry :
             std::filesystem::directory_iterator(parent.path())) {
          if (std::filesystem::exists(entry.path() / "marker")) return true;
        }
        return false;
      },
      result);
  EXPECT_TRUE(result.cancelled);
  EXPECT_TRUE(Entries(parent.path()).empty()) << "the directory is still there";
}

TEST(CommandRunnerTest, RunAsRunsTheChildAsThatAccountInADirectoryOfItsOwn) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  remex::testing::TempDir parent;
  CommandRun run =
      Command({"/bin/sh", "-c", "id -u; id -G; stat -c '%a %u %g' ."});
  run.private_dir_in = parent.path();
  run.run_as = Credentials{.uid = 65534, .gid = 65533};
  const CommandResult result = RunToEnd(run);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_data;
  EXPECT_EQ(result.stdout_data, "65534\n65533\n700 65534 65533\n");
  EXPECT_TRUE(Entries(parent.path()).empty());
}

TEST(CommandRunnerTest, RunAsCannotRegainPrivileges) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  // no_new_privs (a setuid-root binary runs without root) and no
  // capability left of root's.
  CommandRun run = Command(
      {"/bin/grep", "-E",
       "^(NoNewPrivs|CapPrm|CapEff|CapAmb|Groups):", "/proc/self/status"});
  run.run_as = Credentials{.uid = 65534, .gid = 65534};
  const CommandResult result = RunToEnd(run);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_data;
  for (const char* line : {"Groups:\t65534", "CapPrm:\t0000000000000000",
                           "CapEff:\t0000000000000000",
                           "CapAmb:\t0000000000000000", "NoNewPrivs:\t1"}) {
    EXPECT_TRUE(absl::StrContains(result.stdout_data, line))
        << line << " not in:\n"
        << result.stdout_data;
  }
}

}  // namespace
}  // namespace remex::process
