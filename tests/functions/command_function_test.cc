// Command functions end to end: a config file declares functions that run
// executables; the real remex-server runs them for tasks submitted over gRPC
// through the SDK. Children of the server are observed through /proc.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/proc.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::remex::testing::AwaitTask;
using ::remex::testing::ChildrenOf;
using ::remex::testing::GroupMembers;
using ::remex::testing::IsAlive;
using ::remex::testing::ProcEntry;
using ::remex::testing::RunServerExpectingExit;
using ::remex::testing::ServerProcess;
using ::remex::testing::TempDir;
using ::remex::testing::WaitUntil;
using ::remex::testing::WaitUntilRunning;

constexpr char kConfig[] = R"(
pools:
  - {name: default, kind: thread, workers: 4}
shutdown_grace: 200ms
functions:
  - name: upper
    description: "input in capitals"
    command: [/usr/bin/tr, "{from}", "{to}"]
  - name: cat
    command: [/bin/cat]
  - name: one_arg
    command: [/usr/bin/printf, "%s|", "{text}", "--{flag}={{x}}"]
  - name: sleep_for
    command: [/bin/sleep, "{seconds}"]
    cancel_grace: 1s
  - name: stubborn
    command: [/bin/sh, -c, "trap '' TERM; /bin/sleep 30; /bin/sleep 30"]
    cancel_grace: 500ms
  - name: nap
    command: [/bin/sleep, "30"]
    run_timeout: 300ms
  - name: exit3
    command: [/bin/sh, -c, "echo to stdout; echo the reason >&2; exit 3"]
  - name: env
    command: [/usr/bin/env]
    env: {GREETING: hello}
    working_dir: /tmp
  - name: ignores_input
    command: [/bin/true]
  - name: leaves_a_child
    command: [/bin/sh, -c, "/bin/sleep 30 & echo $!"]
  - name: zeros
    command: [/usr/bin/head, -c, "{n}", /dev/zero]
    max_output_bytes: 1000
  - name: pair
    command: [/usr/bin/printf, "%s|", "{a}{b}"]
  - name: show_any
    command: [/usr/bin/printf, "%s|", "{value}"]
    allow_option_values: true
  - name: where
    command: [/bin/sh, -c, "/bin/pwd; /usr/bin/stat -c '%a %u' ."]
  - name: where_fixed
    command: [/bin/pwd]
    working_dir: /tmp
)";

class CommandFunctionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start({"--config", dir_.Write("remex.yaml", kConfig)});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<Client>(server_->address());
  }

  v1::Task Run(const std::string& function, std::string_view args,
               SubmitOptions options = {}) {
    return testing::RunTask(*client_, function, args, options);
  }

  absl::Status SubmitStatus(const std::string& function,
                            std::string_view args) {
    return client_->TrySubmit(function, Json(args)).status();
  }

  // The one child the server started for a running task, once it is there.
  pid_t AwaitOnlyChild() {
    pid_t child = 0;
    EXPECT_TRUE(WaitUntil(
        [&] {
          const std::vector<ProcEntry> children = ChildrenOf(server_->pid());
          if (children.size() == 1) child = children[0].pid;
          return children.size() == 1;
        },
        absl::Seconds(20)))
        << "the server started no command";
    // Until it has exec'd, the child is still a copy of the server, without
    // its own group or working directory (posix_spawn sets them after the
    // fork).
    EXPECT_TRUE(WaitUntil(
        [&] {
          std::error_code ignored;
          return std::filesystem::read_symlink(
                     absl::StrCat("/proc/", child, "/exe"), ignored)
                     .filename() != "remex-server";
        },
        absl::Seconds(10)))
        << "the command did not exec";
    return child;
  }

  // Fails the test unless process group `pgrp` empties and the server has
  // reaped its children within `timeout`.
  void ExpectGroupGone(pid_t pgrp, absl::Duration timeout) {
    EXPECT_TRUE(WaitUntil([&] { return GroupMembers(pgrp).empty(); }, timeout))
        << GroupMembers(pgrp).size() << " processes of group " << pgrp
        << " are still there";
    EXPECT_TRUE(
        WaitUntil([&] { return ChildrenOf(server_->pid()).empty(); }, timeout))
        << "the server did not reap its child";
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(CommandFunctionTest, RunsTheCommandWithArgsAndInput) {
  const v1::Task task = Run("upper", R"({"from": "a-z", "to": "A-Z"})",
                            {.input = "hello, world\n"});
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.DebugString();
  EXPECT_EQ(task.output(), "HELLO, WORLD\n");
  const auto& result = task.result().struct_value().fields();
  EXPECT_EQ(result.at("exit_code").number_value(), 0);
  EXPECT_EQ(result.at("stdout").string_value(), "HELLO, WORLD\n");
  EXPECT_EQ(result.at("stderr").string_value(), "");
  EXPECT_FALSE(result.at("stdout_truncated").bool_value());
}

TEST_F(CommandFunctionTest, BinaryInputRoundTripsThroughStdinAndStdout) {
  std::string bytes;
  for (int i = 0; i < 256 * 1024; ++i) bytes += static_cast<char>(i * 7 % 256);
  const v1::Task task = Run("cat", "{}", {.input = bytes});
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  EXPECT_EQ(task.output(), bytes);
  // Not UTF-8: the bytes are only in the output; the result stays JSON.
  const auto& result = task.result().struct_value().fields();
  EXPECT_TRUE(result.at("stdout").has_null_value());
  EXPECT_EQ(result.at("exit_code").number_value(), 0);
}

TEST_F(CommandFunctionTest, AnArgIsOneArgvElementNeverSplitOrInterpreted) {
  const v1::Task task =
      Run("one_arg", R"({"text": "two words; $(rm -rf /) *", "flag": 7})");
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  EXPECT_EQ(task.output(), "two words; $(rm -rf /) *|--7={x}|");
}

TEST_F(CommandFunctionTest, BadArgsAnswerInvalidArgument) {
  const absl::Status missing = SubmitStatus("upper", R"({"from": "a"})");
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(missing.message(), "args.to is required"))
      << missing;

  const absl::Status unknown =
      SubmitStatus("upper", R"({"from": "a", "to": "b", "tow": "c"})");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(unknown.message(), "unknown arg 'tow'"))
      << unknown;

  // A client's long names and values are not echoed whole.
  const std::string long_name(100000, 'k');
  const absl::Status long_unknown = SubmitStatus(
      "upper",
      absl::StrCat(R"({"from": "a", "to": "b", ")", long_name, R"(": 1})"));
  EXPECT_EQ(long_unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(long_unknown.message().size(), 1000u);
  const absl::Status long_array = SubmitStatus(
      "upper", absl::StrCat("[\"", std::string(100000, 'v'), "\"]"));
  EXPECT_EQ(long_array.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(long_array.message().size(), 1000u);

  const absl::Status not_scalar =
      SubmitStatus("upper", R"({"from": ["a"], "to": "b"})");
  EXPECT_EQ(not_scalar.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(not_scalar.message(), "args.from"))
      << not_scalar;
}

TEST_F(CommandFunctionTest, AValueCannotBecomeAnOptionOfTheCommand) {
  // `tr --help`: the client would pick the command's behaviour.
  const absl::Status help =
      SubmitStatus("upper", R"({"from": "--help", "to": "x"})");
  EXPECT_EQ(help.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(help.message(), "args.from = '--help'"))
      << help;
  EXPECT_TRUE(absl::StrContains(help.message(), "allow_option_values")) << help;

  // A negative number filling a whole element is '-'-led too.
  const absl::Status negative = SubmitStatus("sleep_for", R"({"seconds": -1})");
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(negative.message(), "args.seconds = '-1'"))
      << negative;

  // Placeholders that start an element together: the one whose value
  // leads is named, even after an empty one.
  const absl::Status joined = SubmitStatus("pair", R"({"a": "", "b": "-n"})");
  EXPECT_EQ(joined.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(joined.message(), "args.b = '-n'")) << joined;
}

TEST_F(CommandFunctionTest, DashesAreFineWhereTheyCannotStartAnOption) {
  // After a literal prefix (`--{flag}=...`), or inside a value.
  const v1::Task embedded =
      Run("one_arg", R"({"text": "a-b --c", "flag": "-3"})");
  ASSERT_EQ(embedded.state(), v1::SUCCEEDED) << embedded.error().message();
  EXPECT_EQ(embedded.output(), "a-b --c|---3={x}|");
  const v1::Task pair = Run("pair", R"({"a": "x", "b": "-n"})");
  ASSERT_EQ(pair.state(), v1::SUCCEEDED) << pair.error().message();
  EXPECT_EQ(pair.output(), "x-n|");
}

TEST_F(CommandFunctionTest, AllowOptionValuesLetsAValueStartWithADash) {
  const v1::Task option = Run("show_any", R"({"value": "--help"})");
  ASSERT_EQ(option.state(), v1::SUCCEEDED) << option.error().message();
  EXPECT_EQ(option.output(), "--help|");
  const v1::Task negative = Run("show_any", R"({"value": -2.5})");
  ASSERT_EQ(negative.state(), v1::SUCCEEDED) << negative.error().message();
  EXPECT_EQ(negative.output(), "-2.5|");
}

TEST_F(CommandFunctionTest, EachRunHasAPrivateDirectoryRemovedAfterIt) {
  std::vector<std::string> dirs;
  for (int i = 0; i < 2; ++i) {
    const v1::Task task = Run("where", "{}");
    ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
    const std::vector<std::string> lines =
        absl::StrSplit(task.output(), '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 2u) << task.output();
    // Mode 0700, owned by the server's uid (this test's).
    EXPECT_EQ(lines[1], absl::StrCat("700 ", geteuid())) << task.output();
    EXPECT_TRUE(absl::StartsWith(lines[0], "/")) << lines[0];
    EXPECT_FALSE(std::filesystem::exists(lines[0]))
        << lines[0] << " is still there after the task";
    dirs.push_back(lines[0]);
  }
  EXPECT_NE(dirs[0], dirs[1]);
}

TEST_F(CommandFunctionTest, ACancelledRunsDirectoryIsRemovedToo) {
  Future future = client_->Submit("sleep_for", Json(R"({"seconds": 30})"));
  ASSERT_TRUE(WaitUntilRunning(*client_, future.id()));
  const pid_t child = AwaitOnlyChild();
  ASSERT_GT(child, 0);
  std::error_code error;
  const std::filesystem::path dir = std::filesystem::read_symlink(
      absl::StrCat("/proc/", child, "/cwd"), error);
  ASSERT_FALSE(error) << error.message();
  EXPECT_TRUE(std::filesystem::is_directory(dir)) << dir;
  EXPECT_NE(dir, std::filesystem::current_path());

  EXPECT_TRUE(future.cancel());
  EXPECT_EQ(AwaitTask(*client_, future.id()).state(), v1::CANCELLED);
  EXPECT_TRUE(WaitUntil([&] { return !std::filesystem::exists(dir); },
                        absl::Seconds(10)))
      << dir << " is still there after the cancel";
}

TEST_F(CommandFunctionTest, WorkingDirPicksAFixedDirectory) {
  const v1::Task task = Run("where_fixed", "{}");
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  EXPECT_EQ(task.output(), "/tmp\n");
}

TEST_F(CommandFunctionTest, ANonZeroExitFailsWithTheCodeAndStderr) {
  const v1::Task task = Run("exit3", "{}");
  EXPECT_EQ(task.state(), v1::FAILED);
  EXPECT_TRUE(absl::StrContains(task.error().message(), "exited with code 3"))
      << task.error().message();
  EXPECT_TRUE(absl::StrContains(task.error().message(), "the reason"))
      << task.error().message();
}

TEST_F(CommandFunctionTest, CancelEndsTheTaskAndTheChildProcess) {
  Future future = client_->Submit("sleep_for", Json(R"({"seconds": 30})"));
  ASSERT_TRUE(WaitUntilRunning(*client_, future.id()));
  const pid_t child = AwaitOnlyChild();
  ASSERT_GT(child, 0);
  EXPECT_EQ(GroupMembers(child).size(), 1u) << "its own process group";

  EXPECT_TRUE(future.cancel());
  EXPECT_EQ(AwaitTask(*client_, future.id()).state(), v1::CANCELLED);
  ExpectGroupGone(child, absl::Seconds(10));
}

TEST_F(CommandFunctionTest, ACommandIgnoringSigtermIsKilledAfterTheGrace) {
  Future future = client_->Submit("stubborn", Json("{}"));
  ASSERT_TRUE(WaitUntilRunning(*client_, future.id()));
  const pid_t shell = AwaitOnlyChild();
  ASSERT_GT(shell, 0);
  // The shell and its sleep, both ignoring SIGTERM.
  ASSERT_TRUE(WaitUntil([&] { return GroupMembers(shell).size() == 2; },
                        absl::Seconds(20)));

  EXPECT_TRUE(future.cancel());
  EXPECT_EQ(AwaitTask(*client_, future.id()).state(), v1::CANCELLED);
  ExpectGroupGone(shell, absl::Seconds(10));
}

TEST_F(CommandFunctionTest, RunTimeoutEndsTheTaskTimedOutAndTheChild) {
  absl::StatusOr<Future> future =
      client_->TrySubmit("sleep_for", Json(R"({"seconds": 30})"),
                         {.run_timeout = absl::Milliseconds(500)});
  ASSERT_TRUE(future.ok()) << future.status();
  const pid_t child = AwaitOnlyChild();
  ASSERT_GT(child, 0);
  EXPECT_EQ(AwaitTask(*client_, future->id()).state(), v1::TIMED_OUT);
  ExpectGroupGone(child, absl::Seconds(10));
}

TEST_F(CommandFunctionTest, ShutdownEndsARunningCommand) {
  Future future = client_->Submit("sleep_for", Json(R"({"seconds": 30})"));
  ASSERT_TRUE(WaitUntilRunning(*client_, future.id()));
  const pid_t child = AwaitOnlyChild();
  ASSERT_GT(child, 0);

  ASSERT_EQ(server_->Signal(SIGTERM), 0);
  const absl::StatusOr<int> exit_code = server_->Wait(absl::Seconds(20));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << server_->ServerOutput();
  ExpectGroupGone(child, absl::Seconds(10));
}

TEST_F(CommandFunctionTest, TheConfigsRunTimeoutAppliesWhenSubmitSetsNone) {
  const v1::Task task = Run("nap", "{}");
  EXPECT_EQ(task.state(), v1::TIMED_OUT) << task.DebugString();
  EXPECT_TRUE(WaitUntil([&] { return ChildrenOf(server_->pid()).empty(); },
                        absl::Seconds(10)));
}

TEST_F(CommandFunctionTest, TheEnvironmentIsOnlyPathAndTheConfigured) {
  const v1::Task task = Run("env", "{}");
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  const std::set<std::string> lines =
      absl::StrSplit(task.output(), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines, (std::set<std::string>{"GREETING=hello",
                                          "PATH=/usr/local/bin:/usr/bin:/bin"}))
      << task.output();
}

TEST_F(CommandFunctionTest, ACommandThatReadsNoInputStillSucceeds) {
  // More than a pipe holds: the write fails with EPIPE once /bin/true has
  // exited, which must neither fail the task nor SIGPIPE the server.
  const v1::Task task =
      Run("ignores_input", "{}", {.input = std::string(4 << 20, 'x')});
  EXPECT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  EXPECT_EQ(Run("cat", "{}", {.input = "still here"}).output(), "still here");
}

TEST_F(CommandFunctionTest, WhatACommandLeavesInItsGroupIsKilled) {
  const v1::Task task = Run("leaves_a_child", "{}");
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  pid_t background = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(absl::StripAsciiWhitespace(task.output()), &background))
      << task.output();
  EXPECT_TRUE(
      WaitUntil([&] { return !IsAlive(background); }, absl::Seconds(10)))
      << "the background sleep " << background << " is still there";
}

TEST_F(CommandFunctionTest, OutputBeyondTheLimitIsDroppedAndSaidSo) {
  const v1::Task task = Run("zeros", R"({"n": 100000})");
  ASSERT_EQ(task.state(), v1::SUCCEEDED) << task.error().message();
  EXPECT_EQ(task.output(), std::string(1000, '\0'));
  EXPECT_TRUE(task.result()
                  .struct_value()
                  .fields()
                  .at("stdout_truncated")
                  .bool_value());
}

TEST_F(CommandFunctionTest, ListFunctionsShowsThem) {
  absl::StatusOr<v1::ListFunctionsResponse> functions =
      client_->ListFunctions();
  ASSERT_TRUE(functions.ok()) << functions.status();
  std::map<std::string, std::string> descriptions;
  for (const v1::FunctionInfo& function : functions->functions()) {
    descriptions[function.name()] = function.description();
  }
  EXPECT_EQ(descriptions["upper"], "input in capitals");
  EXPECT_EQ(descriptions["cat"], "runs /bin/cat");
}

// A bad command function stops the server at start: exit 2 (a config
// error), naming the function and the problem.
void ExpectConfigRefused(absl::string_view functions,
                         absl::string_view message) {
  TempDir dir;
  const std::string config =
      dir.Write("remex.yaml", absl::StrCat("functions:\n", functions));
  const remex::testing::ProcessResult run =
      RunServerExpectingExit({"--listen", "127.0.0.1:0", "--config", config});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, message))
      << "want '" << message << "' in: " << run.err;
}

TEST(CommandFunctionConfigTest, BadCommandsAreRefusedAtStart) {
  ExpectConfigRefused("  - {name: x, command: [tr, a, b]}\n",
                      "command[0] must be the absolute path");
  ExpectConfigRefused("  - {name: x, command: [/no/such/tool]}\n",
                      "command[0]: no such file '/no/such/tool'");
  ExpectConfigRefused("  - {name: x, command: [/etc/passwd]}\n",
                      "is not executable");
  ExpectConfigRefused("  - {name: x, command: [/bin/echo, \"{bad name}\"]}\n",
                      "bad placeholder '{bad name}'");
  ExpectConfigRefused("  - {name: x, command: [/bin/echo, \"{open\"]}\n",
                      "'{' without '}'");
  ExpectConfigRefused("  - {name: x, command: [/bin/echo], shell: true}\n",
                      "unknown key 'shell'");
  ExpectConfigRefused("  - {name: x, command: []}\n",
                      "command must name at least the executable");
  ExpectConfigRefused("  - {name: x, command: [/bin/echo], working_dir: tmp}\n",
                      "working_dir must be an absolute path");
  ExpectConfigRefused(
      "  - {name: x, command: [/bin/echo], user: no-such-user-remex}\n",
      "user: no such user 'no-such-user-remex'");
  ExpectConfigRefused(
      "  - {name: x, command: [/bin/echo], group: no-such-group-remex}\n",
      "group: no such group 'no-such-group-remex'");
  ExpectConfigRefused(
      "  - {name: x, command: [/bin/echo], allow_option_values: maybe}\n",
      "allow_option_values: bad value 'maybe'");
}

TEST(CommandFunctionConfigTest, ANameTakenByABuiltinIsRefused) {
  TempDir dir;
  const std::string config = dir.Write(
      "remex.yaml", "functions:\n  - {name: echo, command: [/bin/echo]}\n");
  const remex::testing::ProcessResult run =
      RunServerExpectingExit({"--listen", "127.0.0.1:0", "--config", config});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_TRUE(
      absl::StrContains(run.err, "function 'echo' is already registered"))
      << run.err;
}

}  // namespace
}  // namespace remex
