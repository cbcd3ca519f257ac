// The `remex` command line tool against a real remex-server.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "remex/future.h"
#include "remex/json.h"
#include "remex/v1/executor.pb.h"
#include "tests/testing/server_test.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace remex {
namespace {

using google::protobuf::Value;

constexpr char kUnknownId[] = "000000000000000000000000";
constexpr absl::Duration kCommandTimeout = absl::Seconds(30);

// Exit codes, as `remex --help` documents them.
constexpr int kOk = 0;
constexpr int kRpcError = 1;
constexpr int kUsage = 2;
constexpr int kNotSucceeded = 3;
constexpr int kStillRunning = 4;

// `json` parsed as message M; fails the test if it does not parse.
template <class M>
M Parse(const std::string& json) {
  M message;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status << " in:\n" << json;
  return message;
}

// `json` as a JSON value; fails the test if it is not JSON.
Value ParseValue(const std::string& json) {
  absl::StatusOr<Value> value = ParseJson(json);
  EXPECT_TRUE(value.ok()) << value.status() << " in:\n" << json;
  return value.ok() ? *std::move(value) : Value();
}

// The non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// `text` quoted for /bin/sh.
std::string ShellQuote(const std::string& text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

// A process read while it runs: the test waits for some output, acts, then
// collects the rest. Not thread-safe.
class RunningProcess {
 public:
  explicit RunningProcess(const std::vector<std::string>& argv) {
    absl::StatusOr<testing::SpawnedProcess> process = testing::Spawn(argv);
    EXPECT_TRUE(process.ok()) << process.status();
    if (process.ok()) process_ = *process;
  }
  ~RunningProcess() {
    if (process_.pid > 0) (void)Finish();
  }

  // Reads until `condition(out, err)` holds or kCommandTimeout passes;
  // returns whether it held.
  bool ReadUntil(absl::FunctionRef<bool(const std::string&, const std::string&)>
                     condition) {
    const absl::Time deadline = absl::Now() + kCommandTimeout;
    testing::PumpPipes({process_.stdout_fd, process_.stderr_fd}, Sink(), [&] {
      return condition(out_, err_) || absl::Now() >= deadline;
    });
    return condition(out_, err_);
  }

  // Reads to the end and returns the exit code (-1 if it did not end in
  // time: it is killed).
  int Finish() {
    const absl::Time deadline = absl::Now() + kCommandTimeout;
    testing::PumpPipes({process_.stdout_fd, process_.stderr_fd}, Sink(),
                       [&] { return absl::Now() >= deadline; });
    close(process_.stdout_fd);
    close(process_.stderr_fd);
    const absl::StatusOr<int> exit_code = testing::WaitForExit(
        process_.pid, std::max(deadline - absl::Now(), absl::Seconds(1)));
    process_.pid = -1;
    return exit_code.value_or(-1);
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  std::function<void(size_t, const char*, size_t)> Sink() {
    return [this](size_t index, const char* data, size_t size) {
      (index == 0 ? out_ : err_).append(data, size);
    };
  }

  testing::SpawnedProcess process_;
  std::string out_;
  std::string err_;
};

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

  // Runs the shell command `script` with $REMEX the tool and $REMEX_SERVER
  // the server.
  static testing::ProcessResult Shell(const std::string& script) {
    absl::StatusOr<testing::ProcessResult> result = testing::RunProcess(
        {"/bin/sh", "-c", script}, kCommandTimeout,
        {absl::StrCat("REMEX=", REMEX_CLI_PATH),
         absl::StrCat("REMEX_SERVER=", server_->address())});
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : testing::ProcessResult();
  }

  // Runs a command that prints a task; expects `exit_code`.
  static v1::Task RemexTask(std::vector<std::string> args, int exit_code = 0) {
    const testing::ProcessResult result = Remex(std::move(args));
    EXPECT_EQ(result.exit_code, exit_code) << result.err;
    return Parse<v1::Task>(result.out);
  }

  // Submits `function(args)` and returns the id (-o id).
  static std::string Submit(const std::string& function,
                            const std::string& args = "null") {
    const testing::ProcessResult result =
        Remex({"submit", function, "--args", args, "-o", "id"});
    EXPECT_EQ(result.exit_code, kOk) << result.err;
    return std::string(absl::StripAsciiWhitespace(result.out));
  }

  // Expects `args` to be a usage error, reported in plain words.
  static void ExpectUsageError(std::vector<std::string> args) {
    const testing::ProcessResult result = Remex(args);
    const std::string line = absl::StrJoin(args, " ");
    EXPECT_EQ(result.exit_code, kUsage) << line << "\n"
                                        << result.out << result.err;
    EXPECT_TRUE(absl::StartsWith(result.err, "remex: ")) << result.err;
    EXPECT_TRUE(absl::StrContains(result.err, "remex --help")) << result.err;
    EXPECT_FALSE(absl::StrContains(result.err, "INVALID_ARGUMENT"))
        << result.err;
    EXPECT_EQ(result.out, "") << line;
  }
};

TEST_F(CliTest, SubmitWaitPrintsSucceededTask) {
  const testing::ProcessResult result =
      Remex({"submit", "echo", "--args", R"({"x": 1})", "--wait"});
  EXPECT_EQ(result.exit_code, kOk) << result.err;
  const v1::Task task = Parse<v1::Task>(result.out);
  EXPECT_EQ(task.state(), v1::SUCCEEDED);
  EXPECT_EQ(task.result().struct_value().fields().at("x").number_value(), 1);
  EXPECT_TRUE(absl::StrContains(result.err, task.id())) << result.err;
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

TEST_F(CliTest, SubmitNegativePriority) {
  EXPECT_EQ(
      RemexTask({"submit", "echo", "--priority", "-2", "--wait"}).priority(),
      -2);
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
      RemexTask({"await", submitted.id(), "--timeout", "50ms"}, kStillRunning);
  EXPECT_TRUE(running.state() == v1::QUEUED || running.state() == v1::RUNNING)
      << running.DebugString();

  EXPECT_TRUE(RemexTask({"cancel", submitted.id()}).cancel_requested());
  EXPECT_EQ(
      RemexTask({"await", submitted.id(), "--timeout", "10s"}, kNotSucceeded)
          .state(),
      v1::CANCELLED);

  const testing::ProcessResult list =
      Remex({"list", "--function", "sleep", "--state", "cancelled", "--all"});
  EXPECT_EQ(list.exit_code, kOk) << list.err;
  const v1::ListResponse listed = Parse<v1::ListResponse>(list.out);
  ASSERT_GE(listed.tasks_size(), 1);
  EXPECT_EQ(listed.tasks(listed.tasks_size() - 1).id(), submitted.id());

  const testing::ProcessResult deleted = Remex({"delete", submitted.id()});
  EXPECT_EQ(deleted.exit_code, kOk) << deleted.err;
  const Value answer = ParseValue(deleted.out);
  const auto& ids = answer.struct_value().fields().at("deleted").list_value();
  ASSERT_EQ(ids.values_size(), 1) << deleted.out;
  EXPECT_EQ(ids.values(0).string_value(), submitted.id());
  EXPECT_EQ(Remex({"get", submitted.id()}).exit_code, kRpcError);
}

// The exit codes a script needs to tell outcomes apart: 0, 1, 3 and 4 here
// (2 in BadUsageExitsTwo).
TEST_F(CliTest, ExitCodesTellOutcomesApart) {
  EXPECT_EQ(Remex({"submit", "echo", "--wait"}).exit_code, kOk);
  EXPECT_EQ(Remex({"get", kUnknownId}).exit_code, kRpcError);
  EXPECT_EQ(Remex({"submit", "fail", "--wait"}).exit_code, kNotSucceeded);

  const testing::ProcessResult waited =
      Remex({"submit", "sleep", "--args", R"({"ms": 10000})", "--wait",
             "--timeout", "100ms"});
  EXPECT_EQ(waited.exit_code, kStillRunning) << waited.err;
  const v1::Task running = Parse<v1::Task>(waited.out);
  EXPECT_FALSE(IsTerminal(running.state())) << waited.out;
  EXPECT_TRUE(absl::StrContains(waited.err, running.id())) << waited.err;

  // Several ids: a failed RPC beats a task that failed, which beats one
  // still running.
  const std::string failed = Submit("fail");
  ASSERT_EQ(Remex({"await", failed}).exit_code, kNotSucceeded);
  EXPECT_EQ(
      Remex({"await", failed, running.id(), "--timeout", "100ms"}).exit_code,
      kNotSucceeded);
  EXPECT_EQ(Remex({"await", running.id(), kUnknownId, "--timeout", "100ms"})
                .exit_code,
            kRpcError);
  EXPECT_EQ(Remex({"cancel", running.id()}).exit_code, kOk);
}

TEST_F(CliTest, SubmitWaitPrintsIdOnStderrAtOnce) {
  RunningProcess wait({REMEX_CLI_PATH, "submit", "sleep", "--args",
                       R"({"ms": 60000})", "--wait", "--server",
                       server_->address()});
  ASSERT_TRUE(wait.ReadUntil([](const std::string&, const std::string& err) {
    return absl::StrContains(err, "\n");
  })) << wait.err();
  // The task sleeps for a minute: the id came while it runs.
  EXPECT_EQ(wait.out(), "");
  std::string id;
  for (absl::string_view word :
       absl::StrSplit(wait.err(), absl::ByAnyChar(" ,\n"))) {
    if (word.size() >= 16) id = std::string(word);
  }
  ASSERT_FALSE(id.empty()) << wait.err();
  EXPECT_EQ(RemexTask({"get", id}).function(), "sleep");

  EXPECT_EQ(Remex({"cancel", id}).exit_code, kOk);
  EXPECT_EQ(wait.Finish(), kNotSucceeded) << wait.err();
  EXPECT_EQ(Parse<v1::Task>(wait.out()).state(), v1::CANCELLED);
}

TEST_F(CliTest, OutputFormats) {
  const std::string id = Submit("fail", R"({"message": "boom"})");
  ASSERT_EQ(Remex({"await", id}).exit_code, kNotSucceeded);

  // json: one task object, int32 fields as numbers.
  const testing::ProcessResult json = Remex({"get", id, "-o", "json"});
  const Value task = ParseValue(json.out);
  EXPECT_EQ(task.struct_value().fields().at("id").string_value(), id);
  EXPECT_EQ(task.struct_value().fields().at("state").string_value(), "FAILED");
  EXPECT_EQ(task.struct_value().fields().at("attempt").number_value(), 1);

  // table: a header and one row with the error.
  const std::vector<std::string> table =
      Lines(Remex({"get", id, "-o", "table"}).out);
  ASSERT_EQ(table.size(), 2) << absl::StrJoin(table, "\n");
  for (const char* column : {"ID", "FUNCTION", "STATE", "ATTEMPT", "ERROR"}) {
    EXPECT_TRUE(absl::StrContains(table[0], column)) << table[0];
  }
  for (const std::string& cell :
       {id, std::string("fail"), std::string("FAILED"), std::string("boom")}) {
    EXPECT_TRUE(absl::StrContains(table[1], cell)) << table[1];
  }

  // id: the id alone; the flag may come first.
  const absl::StatusOr<testing::ProcessResult> ids = testing::RunProcess(
      {REMEX_CLI_PATH, "-o", "id", "--server", server_->address(), "get", id},
      kCommandTimeout);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->out, id + "\n");

  // list: {"tasks": [...]}, also when empty.
  const testing::ProcessResult empty =
      Remex({"list", "--function", "no_such_function"});
  EXPECT_EQ(empty.exit_code, kOk) << empty.err;
  const Value none = ParseValue(empty.out);
  ASSERT_TRUE(none.struct_value().fields().contains("tasks")) << empty.out;
  EXPECT_EQ(none.struct_value().fields().at("tasks").list_value().values_size(),
            0);
  const Value failed =
      ParseValue(Remex({"list", "--function", "fail", "--all"}).out);
  bool listed = false;
  for (const Value& each :
       failed.struct_value().fields().at("tasks").list_value().values()) {
    listed |= each.struct_value().fields().at("id").string_value() == id;
  }
  EXPECT_TRUE(listed);
  const std::vector<std::string> listed_ids =
      Lines(Remex({"list", "--function", "fail", "--all", "-o", "id"}).out);
  EXPECT_NE(std::find(listed_ids.begin(), listed_ids.end(), id),
            listed_ids.end());
  EXPECT_TRUE(absl::StartsWith(
      Remex({"list", "--function", "fail", "-o", "table"}).out, "ID "));
}

TEST_F(CliTest, Int64FieldsAreJsonNumbers) {
  const testing::ProcessResult result = Remex({"functions"});
  ASSERT_EQ(result.exit_code, kOk) << result.err;
  const Value functions = ParseValue(result.out);
  const auto& pools =
      functions.struct_value().fields().at("pools").list_value().values();
  ASSERT_FALSE(pools.empty()) << result.out;
  const Value& max_queue = pools[0].struct_value().fields().at("maxQueue");
  EXPECT_EQ(max_queue.kind_case(), Value::kNumberValue) << result.out;
  EXPECT_GT(max_queue.number_value(), 0);
}

TEST_F(CliTest, SeveralIdsAndStdin) {
  const std::string a = Submit("echo", "1");
  const std::string b = Submit("echo", "2");
  ASSERT_EQ(Remex({"await", a, b}).exit_code, kOk);

  const auto ids_of = [](const std::string& json) {
    std::vector<std::string> ids;
    const Value list = ParseValue(json);
    for (const Value& task :
         list.struct_value().fields().at("tasks").list_value().values()) {
      ids.push_back(task.struct_value().fields().at("id").string_value());
    }
    return ids;
  };
  const std::vector<std::string> both = {a, b};
  EXPECT_EQ(ids_of(Remex({"get", a, b}).out), both);

  // '-': ids one per line on stdin; blank lines and spaces do not count.
  const std::string ids = absl::StrCat("printf '", a, "\\n\\n  ", b, "\\n' | ");
  for (const char* command : {"get", "await", "cancel"}) {
    const testing::ProcessResult result =
        Shell(absl::StrCat(ids, "\"$REMEX\" ", command, " -"));
    EXPECT_EQ(result.exit_code, kOk) << command << ": " << result.err;
    EXPECT_EQ(ids_of(result.out), both) << command;
  }
  // '-' with one id still prints a list, so a script sees one shape.
  const testing::ProcessResult one =
      Shell(absl::StrCat("echo ", a, " | \"$REMEX\" get -"));
  EXPECT_EQ(ids_of(one.out), std::vector<std::string>{a});
  // An empty stdin is no ids: an empty list.
  EXPECT_EQ(ids_of(Shell("\"$REMEX\" get - </dev/null").out),
            std::vector<std::string>{});

  // One unknown id among known ones: the others still print; exit 1.
  const testing::ProcessResult mixed = Remex({"get", a, kUnknownId, b});
  EXPECT_EQ(mixed.exit_code, kRpcError);
  EXPECT_EQ(ids_of(mixed.out), both);
  EXPECT_TRUE(absl::StrContains(mixed.err, "NOT_FOUND")) << mixed.err;

  const testing::ProcessResult deleted =
      Shell(absl::StrCat(ids, "\"$REMEX\" delete - -o id"));
  EXPECT_EQ(deleted.exit_code, kOk) << deleted.err;
  EXPECT_EQ(Lines(deleted.out), both);
  EXPECT_EQ(Remex({"get", a}).exit_code, kRpcError);
}

TEST_F(CliTest, FunctionsListsBuiltIns) {
  const testing::ProcessResult result = Remex({"functions"});
  EXPECT_EQ(result.exit_code, kOk) << result.err;
  const auto functions = Parse<v1::ListFunctionsResponse>(result.out);
  std::vector<std::string> names;
  for (const v1::FunctionInfo& function : functions.functions()) {
    names.push_back(function.name());
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "echo"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "sleep"), names.end());
  EXPECT_EQ(Lines(Remex({"functions", "-o", "id"}).out), names);
  EXPECT_TRUE(
      absl::StartsWith(Remex({"functions", "-o", "table"}).out, "FUNCTION "));
}

TEST_F(CliTest, ServerFromEnvironment) {
  const absl::StatusOr<testing::ProcessResult> result =
      testing::RunProcess({REMEX_CLI_PATH, "functions"}, kCommandTimeout,
                          {"REMEX_SERVER=" + server_->address()});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, kOk) << result->err;
}

TEST_F(CliTest, ServerFlagBeforeCommand) {
  const absl::StatusOr<testing::ProcessResult> result = testing::RunProcess(
      {REMEX_CLI_PATH, "--server", server_->address(), "functions"},
      kCommandTimeout);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, kOk) << result->err;
}

TEST_F(CliTest, ServerFlagWinsOverEnvironment) {
  const absl::StatusOr<testing::ProcessResult> result = testing::RunProcess(
      {REMEX_CLI_PATH, "functions", "--server", server_->address()},
      kCommandTimeout, {"REMEX_SERVER=127.0.0.1:1"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, kOk) << result->err;
}

TEST_F(CliTest, UnknownIdIsOneLineNotFound) {
  for (const char* command : {"get", "await", "cancel", "delete"}) {
    const testing::ProcessResult result = Remex({command, kUnknownId});
    EXPECT_EQ(result.exit_code, kRpcError) << command;
    EXPECT_TRUE(absl::StartsWith(result.err, "remex: NOT_FOUND: "))
        << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1)
        << result.err;
    EXPECT_EQ(result.out, "");
  }
}

TEST_F(CliTest, UnknownFunctionIsNotFound) {
  const testing::ProcessResult result = Remex({"submit", "no_such_function"});
  EXPECT_EQ(result.exit_code, kRpcError);
  EXPECT_TRUE(absl::StartsWith(result.err, "remex: NOT_FOUND: ")) << result.err;
}

TEST_F(CliTest, BadUsageExitsTwo) {
  ExpectUsageError({});
  ExpectUsageError({"frobnicate"});
  ExpectUsageError({"get"});
  ExpectUsageError({"get", "a", "--wait"});
  ExpectUsageError({"get", "-", "-"});
  ExpectUsageError({"get", "a", "-o", "yaml"});
  ExpectUsageError({"submit"});
  ExpectUsageError({"submit", "echo", "--args", "{not json"});
  ExpectUsageError({"submit", "echo", "--priority", "high"});
  ExpectUsageError({"submit", "echo", "--label", "novalue"});
  ExpectUsageError({"submit", "echo", "--input-file", "/nonexistent/file"});
  ExpectUsageError({"submit", "echo", "--timeout", "1s"});  // needs --wait
  ExpectUsageError({"await", "x", "--timeout", "soon"});
  ExpectUsageError({"await", "x", "--timeout"});
  ExpectUsageError({"list", "--state", "SLEEPY"});
  ExpectUsageError({"list", "--page-size", "many"});
  ExpectUsageError({"watch", "x", "--state", "RUNNING"});
  ExpectUsageError({"watch", "--interval", "often"});
  ExpectUsageError({"completion", "tcsh"});
  ExpectUsageError({"help", "frobnicate"});
  ExpectUsageError({"--tls-cert", "/dev/null", "functions"});
}

TEST_F(CliTest, FailedTaskWithWaitExitsThree) {
  const v1::Task task = RemexTask(
      {"submit", "fail", "--args", R"({"message": "boom"})", "--wait"},
      kNotSucceeded);
  EXPECT_EQ(task.state(), v1::FAILED);
  EXPECT_EQ(task.error().message(), "boom");
}

TEST_F(CliTest, HelpDocumentsCommandsAndExitCodes) {
  for (const char* help : {"--help", "help", "-h"}) {
    const testing::ProcessResult result = Remex({help});
    EXPECT_EQ(result.exit_code, kOk);
    for (const char* text :
         {"submit", "await", "get", "cancel", "delete", "list", "functions",
          "watch", "completion", "Exit codes", "-o,--output", "127.0.0.1:50051",
          "REMEX_SERVER", "  4  "}) {
      EXPECT_TRUE(absl::StrContains(result.out, text)) << help << ": " << text;
    }
  }
  const testing::ProcessResult submit = Remex({"submit", "--help"});
  EXPECT_EQ(submit.exit_code, kOk);
  EXPECT_TRUE(absl::StrContains(submit.out, "--wait")) << submit.out;
  EXPECT_EQ(Remex({"help", "submit"}).out, submit.out);
  const testing::ProcessResult all = Remex({"--help-all"});
  EXPECT_TRUE(absl::StrContains(all.out, "--page-token")) << all.out;
}

TEST_F(CliTest, Version) {
  const testing::ProcessResult result = Remex({"--version"});
  EXPECT_EQ(result.exit_code, kOk);
  EXPECT_EQ(result.out, absl::StrCat("remex ", REMEX_VERSION, "\n"));
}

// Loads `remex completion bash` into a bash and asks it to complete lines
// as bash would on TAB (COMP_WORDS, COMP_CWORD, then the function that
// `complete -p remex` names).
TEST_F(CliTest, BashCompletion) {
  const std::string id = Submit("echo");
  const testing::ProcessResult script = Remex({"completion", "bash"});
  ASSERT_EQ(script.exit_code, kOk) << script.err;
  const std::string complete = R"(
    complete_line() {  # words of the line; the last one is being completed
      COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
      $(complete -p remex | sed -e 's/.*-F \([^ ]*\) .*/\1/')
      echo "${COMPREPLY[*]}"
    })";
  const testing::ProcessResult result = Shell(absl::StrCat(
      "exec bash --norc -c ",
      ShellQuote(absl::StrCat(
          "source <(\"$REMEX\" completion bash) || exit 1;"
          "complete -p remex;",
          complete,
          "\ncomplete_line remex su\n"
          "complete_line remex ''\n"
          "complete_line remex list --st\n"
          "complete_line remex list --state ''\n"
          "complete_line remex --server \"$REMEX_SERVER\" get -o ''\n"
          "complete_line \"$REMEX\" --server \"$REMEX_SERVER\" submit ec\n"
          "complete_line remex completion ''\n"
          "complete_line \"$REMEX\" --server \"$REMEX_SERVER\" get ",
          id.substr(0, 3), "\n"))));
  ASSERT_EQ(result.exit_code, kOk) << result.out << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 9) << result.out << result.err;
  EXPECT_TRUE(absl::StrContains(lines[0], "complete -F")) << lines[0];
  EXPECT_EQ(lines[1], "submit");
  EXPECT_EQ(lines[2],
            "submit await get cancel delete list functions watch completion "
            "help");
  EXPECT_EQ(lines[3], "--state");
  EXPECT_EQ(lines[4],
            "QUEUED RUNNING SUCCEEDED FAILED CANCELLED TIMED_OUT WORKER_LOST");
  EXPECT_EQ(lines[5], "json table id");
  EXPECT_EQ(lines[6], "echo");  // asked of the server
  EXPECT_EQ(lines[7], "bash");
  EXPECT_TRUE(absl::StrContains(lines[8], id)) << lines[8];  // asked too
}

TEST_F(CliTest, WatchIdsPrintsJsonLinesUntilTheTasksEnd) {
  const std::string slow = Submit("sleep", R"({"ms": 60000})");
  const std::string quick = Submit("echo");
  RunningProcess watch({REMEX_CLI_PATH, "watch", slow, quick, "--interval",
                        "50ms", "--server", server_->address()});
  // Both seen, the slow one not ended.
  ASSERT_TRUE(watch.ReadUntil([&](const std::string& out, const std::string&) {
    return absl::StrContains(out, slow) && absl::StrContains(out, quick);
  })) << watch.out()
      << watch.err();
  EXPECT_EQ(Remex({"cancel", slow}).exit_code, kOk);
  EXPECT_EQ(watch.Finish(), kNotSucceeded) << watch.err();

  std::map<std::string, std::vector<v1::State>> states;
  for (const std::string& line : Lines(watch.out())) {
    const v1::Task task = Parse<v1::Task>(line);  // one object per line
    states[task.id()].push_back(task.state());
  }
  ASSERT_EQ(states.size(), 2) << watch.out();
  // Each change once: the slow task before and after its end.
  EXPECT_EQ(states[quick].back(), v1::SUCCEEDED) << watch.out();
  ASSERT_GE(states[slow].size(), 2) << watch.out();
  EXPECT_FALSE(IsTerminal(states[slow].front())) << watch.out();
  EXPECT_EQ(states[slow].back(), v1::CANCELLED) << watch.out();
  for (size_t i = 1; i < states[slow].size(); ++i) {
    EXPECT_NE(states[slow][i], states[slow][i - 1]) << watch.out();
  }
}

TEST_F(CliTest, WatchExitCodes) {
  const std::string failed = Submit("fail");
  const std::string slow = Submit("sleep", R"({"ms": 10000})");
  EXPECT_EQ(Remex({"watch", failed}).exit_code, kNotSucceeded);
  const testing::ProcessResult running =
      Remex({"watch", slow, "--timeout", "200ms", "--interval", "50ms"});
  EXPECT_EQ(running.exit_code, kStillRunning) << running.err;
  EXPECT_FALSE(IsTerminal(Parse<v1::Task>(Lines(running.out).back()).state()));
  EXPECT_EQ(Remex({"watch", kUnknownId}).exit_code, kRpcError);
  // -o id: each id once, when its task ends.
  EXPECT_EQ(Remex({"cancel", slow}).exit_code, kOk);
  const testing::ProcessResult ids = Shell(absl::StrCat(
      "printf '", failed, "\\n", slow, "\\n' | \"$REMEX\" watch - -o id"));
  EXPECT_EQ(ids.exit_code, kNotSucceeded) << ids.err;
  std::vector<std::string> ended = Lines(ids.out);
  std::sort(ended.begin(), ended.end());
  std::vector<std::string> expected = {failed, slow};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ended, expected);
}

TEST_F(CliTest, WatchFiltersFollowsMatchingTasksUntilTimeout) {
  // "spin" is submitted by no other test of this suite.
  const std::string id = Submit("spin", R"({"ms": 100})");
  const testing::ProcessResult result =
      Remex({"watch", "--function", "spin", "--interval", "50ms", "--timeout",
             "1500ms"});
  EXPECT_EQ(result.exit_code, kOk) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_FALSE(lines.empty());
  bool ended = false;
  for (const std::string& line : lines) {
    const v1::Task task = Parse<v1::Task>(line);
    EXPECT_EQ(task.function(), "spin");
    ended |= task.id() == id && task.state() == v1::SUCCEEDED;
  }
  EXPECT_TRUE(ended) << result.out;
}

// On a terminal (a pseudo-terminal made by script(1)), watch draws a live
// table with a progress line, redrawn in place, instead of JSON lines.
TEST_F(CliTest, WatchOnTerminalDrawsLiveTable) {
  const std::string id = Submit("sleep", R"({"ms": 60000})");
  RunningProcess watch(
      {"/usr/bin/script", "-qec",
       absl::StrCat(ShellQuote(REMEX_CLI_PATH), " watch ", id,
                    " --interval 50ms --server ", server_->address()),
       "/dev/null"});
  // Two frames of the task not ended: the second drawn over the first.
  ASSERT_TRUE(watch.ReadUntil([](const std::string& out, const std::string&) {
    return absl::StrContains(out, "\x1b[3A");
  })) << watch.out()
      << watch.err();
  EXPECT_TRUE(
      absl::StrContains(watch.out(), "[....................] 0/1 ended"))
      << watch.out();
  EXPECT_EQ(Remex({"cancel", id}).exit_code, kOk);
  EXPECT_EQ(watch.Finish(), kNotSucceeded) << watch.out() << watch.err();

  const std::string& out = watch.out();
  EXPECT_FALSE(absl::StrContains(out, "{\"id\"")) << out;
  const size_t last_frame = out.rfind("\x1b[J");
  ASSERT_NE(last_frame, std::string::npos) << out;
  const std::vector<std::string> frame = Lines(out.substr(last_frame + 3));
  ASSERT_EQ(frame.size(), 3) << out;
  EXPECT_TRUE(absl::StartsWith(frame[0],
                               "[####################] 1/1 ended: 1 cancelled"))
      << frame[0];
  EXPECT_TRUE(absl::StartsWith(frame[1], "ID ")) << frame[1];
  EXPECT_TRUE(absl::StrContains(frame[2], id)) << frame[2];
  EXPECT_TRUE(absl::StrContains(frame[2], "CANCELLED")) << frame[2];
}

// submit --wait with stderr on a terminal shows the task's state while it
// waits, in one line that it erases at the end.
TEST_F(CliTest, SubmitWaitOnTerminalShowsProgress) {
  const absl::StatusOr<testing::ProcessResult> result = testing::RunProcess(
      {"/usr/bin/script", "-qec",
       absl::StrCat(ShellQuote(REMEX_CLI_PATH),
                    " submit sleep --args '{\"ms\": 2500}' --wait -o id",
                    " --server ", server_->address()),
       "/dev/null"},
      kCommandTimeout);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, kOk) << result->out;
  EXPECT_TRUE(absl::StrContains(result->out, " RUNNING (attempt 1), waited "))
      << result->out;
  // The progress line erased, then the id alone on stdout.
  const size_t erased = result->out.rfind("\r\x1b[K");
  ASSERT_NE(erased, std::string::npos) << result->out;
  const std::string id(
      absl::StripAsciiWhitespace(result->out.substr(erased + 4)));
  EXPECT_EQ(RemexTask({"get", id}).state(), v1::SUCCEEDED) << result->out;
}

}  // namespace
}  // namespace remex
