// Plugins end to end: the example plugin (examples/plugin) loaded into the
// real remex-server, used over gRPC through the SDK; and the plugins the
// server must refuse at start.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"
#include "tests/testing/temp_dir.h"

namespace remex {
namespace {

using ::remex::testing::AwaitTask;
using ::remex::testing::RunServerExpectingExit;
using ::remex::testing::ServerProcess;
using ::remex::testing::StartServer;
using ::remex::testing::TempDir;
using ::remex::testing::WaitUntilRunning;

// With the built-in pools (a process pool too, where the server has one).
std::unique_ptr<ServerProcess> StartWithExamplePlugin() {
  return StartServer({"--plugin", EXAMPLE_PLUGIN_PATH});
}

std::vector<std::string> PoolNames(Client& client) {
  absl::StatusOr<v1::ListFunctionsResponse> functions = client.ListFunctions();
  EXPECT_TRUE(functions.ok()) << functions.status();
  std::vector<std::string> pools;
  if (functions.ok()) {
    for (const v1::PoolInfo& pool : functions->pools()) {
      pools.push_back(pool.name());
    }
  }
  EXPECT_FALSE(pools.empty());
  return pools;
}

TEST(PluginTest, ListFunctionsShowsThePluginsFunctions) {
  std::unique_ptr<ServerProcess> server = StartWithExamplePlugin();
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  absl::StatusOr<v1::ListFunctionsResponse> functions = client.ListFunctions();
  ASSERT_TRUE(functions.ok()) << functions.status();
  std::vector<std::string> names;
  for (const v1::FunctionInfo& function : functions->functions()) {
    names.push_back(function.name());
    if (function.name() == "reverse" || function.name() == "countdown") {
      EXPECT_EQ(function.default_pool(), "default");
      EXPECT_TRUE(absl::StrContains(function.description(), "example plugin"))
          << function.description();
    }
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "reverse"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "countdown"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "echo"), names.end())
      << "the built-in functions are still there";
}

TEST(PluginTest, ItsFunctionsRunOnEveryPool) {
  std::unique_ptr<ServerProcess> server = StartWithExamplePlugin();
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  for (const std::string& pool : PoolNames(client)) {
    SCOPED_TRACE(absl::StrCat("pool ", pool));
    const SubmitOptions on_pool = {.pool = pool};
    TaskResult reversed =
        client
            .Submit("reverse", Json(R"({"text": "stressed, héllo"})"), on_pool)
            .get();
    EXPECT_EQ(reversed.task().pool(), pool);
    EXPECT_EQ(reversed.value().string_value(), "olléh ,desserts");

    TaskResult counted =
        client.Submit("countdown", Json(R"({"ms": 20})"), on_pool).get();
    EXPECT_EQ(counted.json(), R"({"waited_ms":20})");
  }
}

TEST(PluginTest, CancelAndRunTimeoutStopItsFunctionsOnEveryPool) {
  std::unique_ptr<ServerProcess> server = StartWithExamplePlugin();
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  for (const std::string& pool : PoolNames(client)) {
    SCOPED_TRACE(absl::StrCat("pool ", pool));
    Future cancelled =
        client.Submit("countdown", Json(R"({"ms": 600000})"), {.pool = pool});
    ASSERT_TRUE(WaitUntilRunning(client, cancelled.id()));
    EXPECT_TRUE(cancelled.cancel());
    EXPECT_EQ(AwaitTask(client, cancelled.id()).state(), v1::CANCELLED);

    Future timed_out =
        client.Submit("countdown", Json(R"({"ms": 600000})"),
                      {.pool = pool, .run_timeout = absl::Milliseconds(200)});
    EXPECT_EQ(AwaitTask(client, timed_out.id()).state(), v1::TIMED_OUT);
  }
}

TEST(PluginTest, ACancelledFunctionGivesItsWorkerBack) {
  TempDir dir;
  const std::string config = dir.Write(
      "one_worker.json",
      R"({"pools": [{"name": "default", "kind": "thread", "workers": 1}]})");
  std::unique_ptr<ServerProcess> server =
      StartServer({"--config", config, "--plugin", EXAMPLE_PLUGIN_PATH});
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  Future countdown = client.Submit("countdown", Json(R"({"ms": 600000})"));
  ASSERT_TRUE(WaitUntilRunning(client, countdown.id()));
  EXPECT_TRUE(countdown.cancel());
  // The only worker runs this once the countdown has returned.
  Future next = client.Submit("reverse", Json(R"({"text": "ab"})"));
  const v1::Task done = AwaitTask(client, next.id(), absl::Seconds(20));
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << done.DebugString();
}

TEST(PluginTest, ItsArgsChecksAnswerInvalidArgument) {
  std::unique_ptr<ServerProcess> server = StartWithExamplePlugin();
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  absl::StatusOr<Future> bad_text =
      client.TrySubmit("reverse", Json(R"({"text": 5})"));
  ASSERT_FALSE(bad_text.ok());
  EXPECT_EQ(bad_text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad_text.status().message(), "args.text"))
      << bad_text.status();

  absl::StatusOr<Future> no_ms = client.TrySubmit("countdown", Json("{}"));
  ASSERT_FALSE(no_ms.ok());
  EXPECT_EQ(no_ms.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(no_ms.status().message(), "args.ms"))
      << no_ms.status();
}

TEST(PluginTest, ItsMisbehaviourIsContained) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--plugin", QUIRKY_PLUGIN_none});
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  absl::StatusOr<Future> refused = client.TrySubmit("quirky_check", Json("{}"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
      << "an args check's failure is INVALID_ARGUMENT whatever its code";
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "refuses"))
      << refused.status();

  Future thrown = client.Submit("quirky_throw", Json("{}"));
  const v1::Task task = AwaitTask(client, thrown.id());
  EXPECT_EQ(task.state(), v1::FAILED);
  EXPECT_TRUE(absl::StrContains(task.error().message(), "quirky_throw: boom"))
      << task.error().message();
  EXPECT_EQ(client.Submit("echo", Json("1")).get().json(), "1")
      << "the server goes on";
}

TEST(PluginTest, ConfigPluginPathsAreRelativeToTheConfigFile) {
  TempDir dir;
  std::filesystem::copy_file(EXAMPLE_PLUGIN_PATH, dir.path() / "libexample.so");
  const std::string config =
      dir.Write("remex.yaml", "plugins: [libexample.so]\n");
  ASSERT_NE(std::filesystem::current_path(), dir.path());
  std::unique_ptr<ServerProcess> server = StartServer({"--config", config});
  ASSERT_NE(server, nullptr);
  Client client(server->address());

  EXPECT_EQ(client.Submit("reverse", Json(R"({"text": "abc"})"))
                .get()
                .value()
                .string_value(),
            "cba");
}

// The server refuses to start: exit 1, one line on stderr naming the plugin
// and the problem.
void ExpectRefused(const std::vector<std::string>& args,
                   const std::vector<std::string>& message_parts) {
  const remex::testing::ProcessResult run = RunServerExpectingExit([&] {
    std::vector<std::string> all = {"--listen", "127.0.0.1:0"};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }());
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const absl::string_view err = absl::StripTrailingAsciiWhitespace(run.err);
  EXPECT_FALSE(absl::StrContains(err, "\n")) << "one line: " << run.err;
  EXPECT_FALSE(absl::StrContains(run.out, "listening on")) << run.out;
  for (const std::string& part : message_parts) {
    EXPECT_TRUE(absl::StrContains(err, part))
        << "want '" << part << "' in: " << run.err;
  }
}

TEST(PluginStartTest, AMissingFileIsRefused) {
  ExpectRefused({"--plugin", "/nonexistent/libnope.so"},
                {"plugin /nonexistent/libnope.so", "no such file"});
}

TEST(PluginStartTest, ALibraryWithoutEntryPointsIsRefused) {
  ExpectRefused({"--plugin", NOT_A_PLUGIN_PATH},
                {absl::StrCat("plugin ", NOT_A_PLUGIN_PATH),
                 "not a remex plugin", "remex_plugin_api_version"});
}

TEST(PluginStartTest, APluginOfAnotherApiVersionIsRefused) {
  ExpectRefused({"--plugin", BAD_VERSION_PLUGIN_PATH},
                {absl::StrCat("plugin ", BAD_VERSION_PLUGIN_PATH),
                 "plugin API version 1001", "this server has version 1"});
}

TEST(PluginStartTest, AFileThatIsNoSharedLibraryIsRefused) {
  TempDir dir;
  const std::string path = dir.Write("libtext.so", "not ELF\n");
  ExpectRefused({"--plugin", path},
                {absl::StrCat("plugin ", path), "cannot load"});
}

TEST(PluginStartTest, AFunctionNameTakenTwiceIsRefused) {
  ExpectRefused(
      {"--plugin", EXAMPLE_PLUGIN_PATH, "--plugin", EXAMPLE_PLUGIN_PATH},
      {absl::StrCat("plugin ", EXAMPLE_PLUGIN_PATH),
       "function 'reverse' is already registered"});
}

TEST(PluginStartTest, AFailedRegisterIsRefusedEvenIfThePluginIgnoresIt) {
  ExpectRefused({"--plugin", QUIRKY_PLUGIN_ignored_failure},
                {absl::StrCat("plugin ", QUIRKY_PLUGIN_ignored_failure),
                 "function name must not be empty"});
}

TEST(PluginStartTest, AThrowingRegistrationIsRefused) {
  ExpectRefused({"--plugin", QUIRKY_PLUGIN_throwing_registration},
                {absl::StrCat("plugin ", QUIRKY_PLUGIN_throwing_registration),
                 "the registration function threw: no registration today"});
}

TEST(PluginStartTest, AFunctionOnAnUnknownPoolIsRefused) {
  ExpectRefused({"--plugin", QUIRKY_PLUGIN_unknown_pool},
                {"function 'lost' runs on pool 'nowhere'"});
}

TEST(PluginStartTest, HelpDocumentsThePluginFlag) {
  const remex::testing::ProcessResult run = RunServerExpectingExit({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(run.out, "--plugin PATH.so")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "plugins:")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "functions:")) << run.out;
}

}  // namespace
}  // namespace remex
