// The server's log as operators read it, from a real remex-server: one line
// per event, JSON or text (--log-format, config log_format), filtered by
// --log-level; a worker killed by a signal or ended by an exit names the
// signal or the code and the task it ran (the RemexWorkersCrashLooping
// runbook sends people there); drain steps; bad settings are usage errors.
#include <signal.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "remex/client.h"
#include "server/auth/principals.h"
#include "tests/testing/sdk_util.h"
#include "tests/testing/server_test.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// One process worker, so that every crash hits the same kind of worker and
// the next task waits for its replacement.
constexpr char kConfig[] = R"(
pools:
  - {name: default, kind: thread, workers: 2}
  - {name: process, kind: process, workers: 1}
)";

// The server's two stdout lines (its readiness, the same in every format);
// every other line of ServerOutput() is its stderr.
bool IsStdoutLine(const std::string& line) {
  return absl::StartsWith(line, "remex-server ") &&
         absl::StrContains(line, " listening on ");
}

class LogsTest : public testing::ServerTest {
 protected:
  LogsTest() : ServerTest(absl::Seconds(20)) {}

  void Start(std::vector<std::string> args) {
    args.insert(args.end(), {"--config", WriteFile("remex.yaml", kConfig),
                             "--enable-test-functions"});
    StartServer(std::move(args));
    client_.emplace(server().address());
  }

  // Runs crash(how) once on the process pool; returns the task's id.
  std::string Crash(const std::string& how) {
    SubmitOptions options;
    options.pool = "process";
    options.max_attempts = 1;
    const v1::Task task = testing::RunTask(
        *client_, "crash", absl::StrCat(R"({"how": ")", how, R"("})"), options);
    EXPECT_EQ(task.state(), v1::WORKER_LOST) << task.ShortDebugString();
    return task.id();
  }

  // The stderr lines parsed as JSON; fails the test for any that is not.
  std::vector<nlohmann::json> JsonLines() {
    std::vector<nlohmann::json> lines;
    for (const std::string& line : server().output()) {
      if (IsStdoutLine(line)) continue;
      nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
      EXPECT_TRUE(parsed.is_object()) << "not a JSON object: " << line;
      if (parsed.is_object()) lines.push_back(std::move(parsed));
    }
    return lines;
  }

  // The first JSON line of `event` whose `task` is `task`, once logged.
  std::optional<nlohmann::json> AwaitEvent(const std::string& event,
                                           const std::string& task) {
    std::optional<nlohmann::json> found;
    testing::WaitUntil([&] {
      for (const std::string& line : server().output()) {
        const nlohmann::json parsed =
            nlohmann::json::parse(line, nullptr, false);
        if (parsed.is_object() && parsed.value("event", "") == event &&
            parsed.value("task", "") == task) {
          found = parsed;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::optional<Client> client_;
};

TEST_F(LogsTest, JsonNamesTheSignalOrExitCodeAndTaskOfEachDeadWorker) {
  Start({"--log-format", "json"});
  const std::string segv = Crash("segv");
  const std::string exited = Crash("exit");
  const std::string aborted = Crash("abort");

  const std::optional<nlohmann::json> by_segv = AwaitEvent("worker_died", segv);
  ASSERT_TRUE(by_segv.has_value()) << server().ServerOutput();
  EXPECT_EQ((*by_segv)["level"], "warn");
  EXPECT_EQ((*by_segv)["signal"], "SIGSEGV");
  EXPECT_EQ((*by_segv)["pool"], "process");
  EXPECT_GT((*by_segv)["pid"].get<int64_t>(), 0);
  EXPECT_EQ((*by_segv)["attempt"], 1);
  EXPECT_FALSE(by_segv->contains("exit_code"));
  EXPECT_THAT((*by_segv)["msg"].get<std::string>(), HasSubstr(segv));

  const std::optional<nlohmann::json> by_exit =
      AwaitEvent("worker_died", exited);
  ASSERT_TRUE(by_exit.has_value()) << server().ServerOutput();
  EXPECT_EQ((*by_exit)["exit_code"], 3);  // crash's _exit(3)
  EXPECT_FALSE(by_exit->contains("signal"));

  const std::optional<nlohmann::json> by_abort =
      AwaitEvent("worker_died", aborted);
  ASSERT_TRUE(by_abort.has_value()) << server().ServerOutput();
  EXPECT_EQ((*by_abort)["signal"], "SIGABRT");
  // Each death is a new worker.
  EXPECT_NE((*by_segv)["pid"], (*by_exit)["pid"]);

  // Each dead worker's replacement is logged too (once it is spawned)...
  EXPECT_TRUE(testing::WaitUntil([&] {
    int started = 0;
    for (const std::string& line : server().output()) {
      started += absl::StrContains(line, R"("event":"worker_started")");
    }
    return started == 3;
  })) << server().ServerOutput();
  // ... and the drain, step by step.
  ASSERT_EQ(server().Signal(SIGTERM), 0);
  ExpectExitsZero(absl::Seconds(15));
  // Its last lines may still be in the pipe.
  EXPECT_TRUE(testing::WaitUntil([&] {
    return absl::StrContains(server().ServerOutput(), R"("event":"stopped")");
  })) << server().ServerOutput();
  std::vector<std::string> events;
  for (const nlohmann::json& line : JsonLines()) {
    EXPECT_TRUE(line.contains("ts") && line.contains("level") &&
                line.contains("msg"))
        << line.dump();
    events.push_back(line.value("event", ""));
  }
  for (const char* event :
       {"start", "listening", "worker_started", "worker_died", "drain_started",
        "drain_refusing", "drain_idle", "drain_calls_answered", "stopped"}) {
    EXPECT_THAT(events, Contains(event)) << server().ServerOutput();
  }
  // Not a line per task: three crashes, three deaths, three replacements.
  EXPECT_EQ(std::count(events.begin(), events.end(), "worker_died"), 3);
  EXPECT_EQ(std::count(events.begin(), events.end(), "worker_started"), 3);
}

TEST_F(LogsTest, StartAndListeningLinesSayWhatTheServerIs) {
  Start({"--log-format", "json"});
  // stdout says "listening on" first; the log lines follow on stderr.
  std::vector<nlohmann::json> lines;
  ASSERT_TRUE(testing::WaitUntil([&] {
    lines = JsonLines();
    return lines.size() >= 2;
  })) << server().ServerOutput();
  EXPECT_EQ(lines[0]["event"], "start");
  EXPECT_EQ(lines[0]["store"], "memory");
  EXPECT_EQ(lines[0]["auth"], "none");
  EXPECT_EQ(lines[0]["tls"], "off");
  EXPECT_EQ(lines[0]["pools"], "default(thread,2),process(process,1)");
  EXPECT_TRUE(lines[0].contains("version"));
  EXPECT_EQ(lines[1]["event"], "listening");
  EXPECT_EQ(lines[1]["address"], server().address());
  EXPECT_EQ(lines[1]["metrics_address"], *server().MetricsAddress());
}

TEST_F(LogsTest, WarnLevelDropsInfoLinesAndTextHasFields) {
  Start({"--log-level", "warn"});
  const std::string exited = Crash("exit");
  std::string died;
  ASSERT_TRUE(testing::WaitUntil([&] {
    for (const std::string& line : server().output()) {
      if (absl::StrContains(line, " worker_died ")) died = line;
    }
    return !died.empty();
  })) << server().ServerOutput();
  EXPECT_THAT(died, MatchesRegex(absl::StrCat(
                        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z "
                        "warn worker_died pool=process pid=[0-9]+ "
                        "exit_code=3 task=",
                        exited, " attempt=1 .* msg=\".*\"")));
  for (const std::string& line : server().output()) {
    if (IsStdoutLine(line)) continue;
    EXPECT_THAT(line, Not(HasSubstr("Z info "))) << line;
    EXPECT_THAT(line, Not(HasSubstr("Z debug "))) << line;
  }
}

TEST_F(LogsTest, FlagsOverrideTheConfigFile) {
  // The file asks for JSON at debug; the flag for text: text at debug.
  StartServer({"--config",
               WriteFile("remex.yaml", absl::StrCat(kConfig,
                                                    "log_format: json\n"
                                                    "log_level: debug\n")),
               "--log-format", "text"});
  bool initial_worker = false;
  ASSERT_TRUE(testing::WaitUntil([&] {
    for (const std::string& line : server().output()) {
      if (absl::StrContains(line, " debug worker_started pool=process ") &&
          absl::StrContains(line, " reason=start ")) {
        initial_worker = true;
      }
    }
    return initial_worker;
  })) << server().ServerOutput();
  for (const std::string& line : server().output()) {
    EXPECT_FALSE(absl::StartsWith(line, "{")) << line;
  }
}

TEST_F(LogsTest, RecycledWorkersAreNotALinePerTask) {
  // Every task recycles its worker: one line for the first, the others
  // counted in the next line (at most one per 10 s), and no line for their
  // replacements at info.
  StartServer({"--log-format", "json", "--config", WriteFile("remex.yaml", R"(
pools:
  - {name: default, kind: thread, workers: 2}
  - {name: process, kind: process, workers: 1, max_tasks_per_worker: 1}
)")});
  Client client(server().address());
  SubmitOptions options;
  options.pool = "process";
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(testing::RunTask(client, "echo", "{}", options).state(),
              v1::SUCCEEDED);
  }
  // The fourth replacement has started once a fifth task runs.
  EXPECT_EQ(testing::RunTask(client, "echo", "{}", options).state(),
            v1::SUCCEEDED);
  std::vector<nlohmann::json> recycled;
  ASSERT_TRUE(testing::WaitUntil([&] {
    recycled.clear();
    for (const nlohmann::json& line : JsonLines()) {
      if (line["event"] == "worker_recycled") recycled.push_back(line);
    }
    return !recycled.empty();
  })) << server().ServerOutput();
  for (const nlohmann::json& line : JsonLines()) {
    EXPECT_NE(line["event"], "worker_started") << line.dump();
    EXPECT_NE(line["event"], "worker_died") << line.dump();
  }
  ASSERT_EQ(recycled.size(), 1u) << server().ServerOutput();
  EXPECT_EQ(recycled[0]["tasks_run"], 1);
  EXPECT_EQ(recycled[0]["suppressed"], 0);
  EXPECT_EQ(recycled[0]["pool"], "process");
}

TEST_F(LogsTest, AWorkerKilledAfterACancelSaysWhichTask) {
  StartServer({"--log-format", "json", "--enable-test-functions", "--config",
               WriteFile("remex.yaml", R"(
pools:
  - {name: default, kind: thread, workers: 2}
  - {name: process, kind: process, workers: 1, cancel_grace: 100ms}
)")});
  Client client(server().address());
  SubmitOptions options;
  options.pool = "process";
  absl::StatusOr<Future> stuck =
      client.TrySubmit("ignore_cancel", Json(R"({"ms": 20000})"), options);
  ASSERT_TRUE(stuck.ok()) << stuck.status();
  ASSERT_TRUE(testing::WaitUntilRunning(client, stuck->id()));
  ASSERT_TRUE(client.Cancel(stuck->id()).ok());
  const std::optional<nlohmann::json> killed =
      AwaitEvent("worker_killed", stuck->id());
  ASSERT_TRUE(killed.has_value()) << server().ServerOutput();
  EXPECT_EQ((*killed)["reason"], "cancel");
  EXPECT_EQ((*killed)["pool"], "process");
  EXPECT_EQ((*killed)["cancel_grace"], "100ms");
}

TEST_F(LogsTest, AuthFailuresAndReloadsAreEvents) {
  const std::string auth = WriteFile(
      "auth.yaml",
      absl::StrCat("principals:\n  - name: alice\n"
                   "    token_sha256: ",
                   auth::TokenSha256Hex("alice-token-0123456789"), "\n"));
  StartServer({"--log-format", "json", "--auth", auth});
  Client anonymous(server().address());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(anonymous.ListFunctions().status().code(),
              absl::StatusCode::kUnauthenticated);
  }
  ASSERT_EQ(server().Signal(SIGHUP), 0);
  std::vector<nlohmann::json> failures;
  std::optional<nlohmann::json> reloaded;
  ASSERT_TRUE(testing::WaitUntil([&] {
    failures.clear();
    for (const nlohmann::json& line : JsonLines()) {
      if (line["event"] == "auth_failures") failures.push_back(line);
      if (line["event"] == "config_reloaded") reloaded = line;
    }
    return !failures.empty() && reloaded.has_value();
  })) << server().ServerOutput();
  // The first failure at once; the next two wait for the next period.
  ASSERT_EQ(failures.size(), 1u) << server().ServerOutput();
  EXPECT_EQ(failures[0]["level"], "warn");
  EXPECT_EQ(failures[0]["count"], 1);
  EXPECT_EQ(failures[0]["reason"], "missing_credentials");
  EXPECT_THAT(failures[0]["peer"].get<std::string>(), HasSubstr("127.0.0.1"));
  EXPECT_EQ((*reloaded)["what"], "auth");
  EXPECT_EQ((*reloaded)["principals"], 1);
}

TEST(LogSettingsTest, BadValuesAreUsageErrors) {
  testing::ProcessResult format =
      testing::RunServerExpectingExit({"--log-format", "xml"});
  EXPECT_EQ(format.exit_code, 2);
  EXPECT_EQ(format.err,
            "remex-server: --log-format: expected text or json, got 'xml'\n");
  EXPECT_THAT(format.out, Not(HasSubstr("listening on")));

  testing::ProcessResult level =
      testing::RunServerExpectingExit({"--log-level=verbose"});
  EXPECT_EQ(level.exit_code, 2);
  EXPECT_EQ(level.err,
            "remex-server: --log-level: expected debug, info, warn or error, "
            "got 'verbose'\n");
}

TEST(LogSettingsTest, StartFailuresAreOneJsonLineInJsonMode) {
  // A plugin that does not exist stops the start: exit 1, one line.
  testing::ProcessResult refused = testing::RunServerExpectingExit(
      {"--listen", "127.0.0.1:0", "--metrics-listen", "none", "--log-format",
       "json", "--plugin", "/nonexistent/plugin.so"});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  const nlohmann::json line =
      nlohmann::json::parse(refused.err, nullptr, false);
  ASSERT_TRUE(line.is_object()) << refused.err;
  EXPECT_EQ(line["event"], "start_failed");
  EXPECT_EQ(line["level"], "error");
  EXPECT_THAT(line["msg"].get<std::string>(),
              HasSubstr("/nonexistent/plugin.so"));
}

}  // namespace
}  // namespace remex
