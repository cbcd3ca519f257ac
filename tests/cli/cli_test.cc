// The `remex` command line tool against a real remex-server.
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "remex/v1/executor.pb.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"

namespace remex {
namespace {

constexpr char kUnknownId[] = "000000000000000000000000";
constexpr absl::Duration kCommandTimeout = absl::Seconds(30);

// `json` parsed as message M; fails the test if it does not parse.
template <class M>
M Parse(const std::string& json) {
  M message;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status << " in:\n" << json;
  return message;
}

class CliTest : public testing::SharedServerTest {
 protected:
  static void SetUpTestSuite() { StartSharedServer(); }

  // Runs `remex ARGS --server ADDRESS` (bounded by kCommandTimeout).
  static testing::ProcessResult Remex(std::vector<std::string> args) {
    args.insert(args.begin(), REMEX_CLI_PATH);
    args.push_back("--server");
    args.push_back(server_->address());
    absl::StatusOr<testing::ProcessResult> result =
        testing::RunProcess(args, kCommandTimeout);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : testing::ProcessResult();
  }

  // Runs a command that prints a task; expects `exit_code`.
  static v1::Task RemexTask(std::vector<std::string> args, int exit_code = 0) {
    const testing::ProcessResult result = Remex(std::move(args));
    EXPECT_EQ(result.exit_code, exit_code) << result.err;
    return Parse<v1::Task>(result.out);
  }

  // Expects `args` to be a usage error.
  static void ExpectUsageError(std::vector<std::string> args) {
    const testing::ProcessResult result = Remex(args);
    EXPECT_EQ(result.exit_code, 2) << result.out << result.err;
    EXPECT_TRUE(absl::StartsWith(result.err, "remex: INVALID_ARGUMENT: "))
        << result.err;
  }
};

TEST_F(CliTest, SubmitWaitPrintsSucceededTask) {
  const v1::Task task =
      RemexTask({"submit", "echo", "--args", R"({"x": 1})", "--wait"});
  EXPECT_EQ(task.state(), v1::SUCCEEDED);
  EXPECT_EQ(task.result().struct_value().fields().at("x").number_value(), 1);
}

TEST_F(CliTest, SubmitPassesOptions) {
  const v1::Task task =
      RemexTask({"submit", "echo", "--input", "raw", "--priority", "3",
                 "--label", "a=b", "--label=c=d=e", "--ttl", "2m",
                 "--max-attempts", "1", "--run-timeout", "5s", "--wait"});
  EXPECT_EQ(task.output(), "raw");
  EXPECT_EQ(task.priority(), 3);
  EXPECT_EQ(task.labels().at("a"), "b");
  EXPECT_EQ(task.labels().at("c"), "d=e");
}

TEST_F(CliTest, SubmitInputFile) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/remex_cli_input_", getpid());
  std::ofstream(path) << "abc";
  const v1::Task task =
      RemexTask({"submit", "sha256", "--input-file", path, "--wait"});
  std::remove(path.c_str());
  EXPECT_EQ(task.result().string_value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(CliTest, SubmitThenGetAwaitCancelListDelete) {
  const v1::Task submitted =
      RemexTask({"submit", "sleep", "--args", R"({"ms": 10000})"});
  ASSERT_FALSE(submitted.id().empty());
  EXPECT_EQ(RemexTask({"get", submitted.id()}).id(), submitted.id());

  const v1::Task running =
      RemexTask({"await", submitted.id(), "--timeout", "50ms"});
  EXPECT_TRUE(running.state() == v1::QUEUED || running.state() == v1::RUNNING)
      << running.DebugString();

  EXPECT_TRUE(RemexTask({"cancel", submitted.id()}).cancel_requested());
  EXPECT_EQ(RemexTask({"await", submitted.id(), "--timeout", "10s"}, 3).state(),
            v1::CANCELLED);

  const testing::ProcessResult list =
      Remex({"list", "--function", "sleep", "--state", "cancelled"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  const v1::ListResponse listed = Parse<v1::ListResponse>(list.out);
  ASSERT_GE(listed.tasks_size(), 1);
  EXPECT_EQ(listed.tasks(listed.tasks_size() - 1).id(), submitted.id());

  EXPECT_EQ(Remex({"delete", submitted.id()}).exit_code, 0);
  EXPECT_EQ(Remex({"get", submitted.id()}).exit_code, 1);
}

TEST_F(CliTest, FunctionsListsBuiltIns) {
  const testing::ProcessResult result = Remex({"functions"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto functions = Parse<v1::ListFunctionsResponse>(result.out);
  std::vector<std::string> names;
  for (const v1::FunctionInfo& function : functions.functions()) {
    names.push_back(function.name());
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "echo"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "sleep"), names.end());
}

TEST_F(CliTest, ServerFromEnvironment) {
  const absl::StatusOr<testing::ProcessResult> result =
      testing::RunProcess({REMEX_CLI_PATH, "functions"}, kCommandTimeout,
                          {"REMEX_SERVER=" + server_->address()});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->err;
}

TEST_F(CliTest, ServerFlagBeforeCommand) {
  const absl::StatusOr<testing::ProcessResult> result = testing::RunProcess(
      {REMEX_CLI_PATH, "--server", server_->address(), "functions"},
      kCommandTimeout);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->err;
}

TEST_F(CliTest, UnknownIdIsOneLineNotFound) {
  for (const char* command : {"get", "await", "cancel", "delete"}) {
    const testing::ProcessResult result = Remex({command, kUnknownId});
    EXPECT_EQ(result.exit_code, 1) << command;
    EXPECT_TRUE(absl::StartsWith(result.err, "remex: NOT_FOUND: "))
        << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1)
        << result.err;
    EXPECT_EQ(result.out, "");
  }
}

TEST_F(CliTest, UnknownFunctionIsNotFound) {
  const testing::ProcessResult result = Remex({"submit", "no_such_function"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(result.err, "remex: NOT_FOUND: ")) << result.err;
}

TEST_F(CliTest, BadUsageExitsTwo) {
  ExpectUsageError({});
  ExpectUsageError({"frobnicate"});
  ExpectUsageError({"get"});
  ExpectUsageError({"get", "a", "b"});
  ExpectUsageError({"get", "a", "--wait"});
  ExpectUsageError({"submit", "echo", "--args", "{not json"});
  ExpectUsageError({"submit", "echo", "--priority", "high"});
  ExpectUsageError({"submit", "echo", "--label", "novalue"});
  ExpectUsageError({"submit", "echo", "--input-file", "/nonexistent/file"});
  ExpectUsageError({"await", "x", "--timeout", "soon"});
  ExpectUsageError({"await", "x", "--timeout"});
  ExpectUsageError({"list", "--state", "SLEEPY"});
}

TEST_F(CliTest, FailedTaskWithWaitExitsThree) {
  const v1::Task task = RemexTask(
      {"submit", "fail", "--args", R"({"message": "boom"})", "--wait"}, 3);
  EXPECT_EQ(task.state(), v1::FAILED);
  EXPECT_EQ(task.error().message(), "boom");
}

TEST_F(CliTest, HelpDocumentsCommandsAndExitCodes) {
  for (const char* help : {"--help", "help", "-h"}) {
    const testing::ProcessResult result = Remex({help});
    EXPECT_EQ(result.exit_code, 0);
    for (const char* text : {"submit FUNCTION", "await ID", "list", "functions",
                             "Exit codes", "--wait"}) {
      EXPECT_TRUE(absl::StrContains(result.out, text)) << text;
    }
  }
}

}  // namespace
}  // namespace remex
