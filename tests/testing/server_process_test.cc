// The fixture itself: start, output, signals, exit codes.
#include "tests/testing/server_process.h"

#include <signal.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace remex::testing {
namespace {

TEST(ServerProcessTest, StartsOnAFreeLocalPortAndExitsZeroOnSigterm) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(absl::StartsWith((*server)->address(), "127.0.0.1:"));
  EXPECT_FALSE(absl::EndsWith((*server)->address(), ":0"));
  EXPECT_TRUE(absl::StrContains((*server)->ServerOutput(), "listening on"));
  ASSERT_EQ((*server)->Signal(SIGTERM), 0);
  const absl::StatusOr<int> exit_code = (*server)->Wait(absl::Seconds(15));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << (*server)->ServerOutput();
}

TEST(ServerProcessTest, BadFlagIsAnErrorWithOutput) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start({"--no-such-flag"});
  EXPECT_FALSE(server.ok());
}

TEST(SubprocessTest, RunProcessCollectsOutputAndExitCode) {
  const absl::StatusOr<ProcessResult> result = RunProcess(
      {"/bin/sh", "-c", "echo out; echo err >&2; exit 4"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 4);
  EXPECT_EQ(result->out, "out\n");
  EXPECT_EQ(result->err, "err\n");
}

TEST(SubprocessTest, RunProcessKillsWhatOutlivesTheTimeout) {
  const absl::StatusOr<ProcessResult> result =
      RunProcess({"/bin/sleep", "30"}, absl::Milliseconds(100));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace remex::testing
