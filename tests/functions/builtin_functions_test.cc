// The built-in functions, called directly through their FunctionSpec and
// through an Executor.
#include "server/functions/builtin_functions.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/cancellation.h"
#include "server/executor/executor.h"
#include "server/executor/function_registry.h"
#include "tests/executor/executor_test_util.h"

namespace remex::functions {
namespace {

using ::remex::executor::CancellationToken;
using ::remex::executor::Executor;
using ::remex::executor::ExecutorOptions;
using ::remex::executor::FunctionRegistry;
using ::remex::executor::FunctionSpec;
using ::remex::executor::Json;
using ::remex::executor::TaskContext;
using ::remex::executor::TaskSnapshot;
using ::remex::executor::TaskSpec;
using ::remex::executor::TaskState;
using ::remex::executor::testing::AwaitTerminal;
using ::remex::executor::testing::MakeSpec;
using ::remex::executor::testing::ThreadPoolConfig;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// sha256("abc") and sha256("").
constexpr char kAbcDigest[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmptyDigest[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// What a function body produced.
struct Ran {
  absl::Status status;
  Json result;
  std::string output;
};

class BuiltinFunctionsTest : public ::testing::Test {
 protected:
  BuiltinFunctionsTest() {
    EXPECT_TRUE(RegisterBuiltinFunctions({}, registry_).ok());
  }

  const FunctionSpec& Function(const std::string& name) {
    const FunctionSpec* function = registry_.Find(name);
    EXPECT_NE(function, nullptr) << name;
    return *function;
  }

  // Runs `name`'s body on this thread with `token`, as a worker would.
  Ran Call(const std::string& name, Json args, std::string input = "",
           const CancellationToken* token = nullptr) {
    TaskSpec spec = MakeSpec(name, std::move(args));
    spec.input = std::move(input);
    const CancellationToken never_cancelled;
    const std::string id = "test-task";
    TaskContext context(id, spec, token != nullptr ? *token : never_cancelled);
    Ran ran;
    ran.status = Function(name).body(context);
    ran.result = context.mutable_result();
    ran.output = context.mutable_output();
    return ran;
  }

  // The args check of `name`: OK, or why the args do not fit.
  absl::Status Check(const std::string& name, const Json& args,
                     const std::string& input = "") {
    const FunctionSpec& function = Function(name);
    if (!function.check_args) return absl::OkStatus();
    return function.check_args(args, input);
  }

  // Runs `spec` through an executor with one thread pool.
  TaskSnapshot RunThroughExecutor(TaskSpec spec) {
    ExecutorOptions options;
    options.pools = {ThreadPoolConfig("default", 1)};
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(options, registry_);
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (!executor.ok()) return TaskSnapshot();
    absl::StatusOr<TaskSnapshot> submitted = (*executor)->Submit(spec);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    if (!submitted.ok()) return TaskSnapshot();
    absl::StatusOr<TaskSnapshot> done =
        AwaitTerminal(**executor, submitted->id);
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? *done : TaskSnapshot();
  }

  FunctionRegistry registry_;
};

// Sets `token` from another thread after `delay`.
class CancelLater {
 public:
  CancelLater(CancellationToken& token, absl::Duration delay)
      : thread_([&token, delay] {
          absl::SleepFor(delay);
          token.Cancel();
        }) {}
  ~CancelLater() { thread_.join(); }

 private:
  std::thread thread_;
};

TEST_F(BuiltinFunctionsTest, RegistersThePinnedFunctionsWithoutCrash) {
  std::vector<std::string> names;
  for (const FunctionSpec* function : registry_.List()) {
    names.push_back(function->name);
    EXPECT_FALSE(function->description.empty()) << function->name;
    EXPECT_TRUE(function->default_pool.empty()) << function->name;
  }
  EXPECT_THAT(names,
              ElementsAre("echo", "fail", "primes", "sha256", "sleep", "spin"));
  EXPECT_EQ(registry_.Find("crash"), nullptr);
  EXPECT_EQ(registry_.Find("ignore_cancel"), nullptr);
}

TEST_F(BuiltinFunctionsTest, RegisteringTwiceIsAlreadyExists) {
  EXPECT_EQ(RegisterBuiltinFunctions({}, registry_).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(BuiltinFunctionsTest, CrashOnlyWithTestFunctionsAndChecksHow) {
  FunctionRegistry with_crash;
  ASSERT_TRUE(
      RegisterBuiltinFunctions({.enable_test_functions = true}, with_crash)
          .ok());
  EXPECT_NE(with_crash.Find("ignore_cancel"), nullptr);
  const FunctionSpec* crash = with_crash.Find("crash");
  ASSERT_NE(crash, nullptr);
  ASSERT_TRUE(crash->check_args);
  // Never run: it would kill this test process.
  for (const char* how : {"segv", "abort", "exit", "oom"}) {
    EXPECT_TRUE(crash->check_args({{"how", how}}, "").ok()) << how;
  }
  for (const Json& args : {Json({{"how", "gently"}}), Json::object(),
                           Json({{"how", 1}}), Json(nullptr)}) {
    const absl::Status status = crash->check_args(args, "");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << args;
    EXPECT_THAT(std::string(status.message()), HasSubstr("how")) << args;
  }
  EXPECT_EQ(crash->check_args(Json::array({"segv"}), "").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BuiltinFunctionsTest, EchoReturnsArgsAndInput) {
  const Json args = {{"x", 1}, {"nested", {{"list", {1, 2, 3}}}}};
  Ran ran = Call("echo", args, "some input");
  ASSERT_TRUE(ran.status.ok()) << ran.status;
  EXPECT_EQ(ran.result, args);
  EXPECT_EQ(ran.output, "some input");

  ran = Call("echo", Json(nullptr));
  ASSERT_TRUE(ran.status.ok());
  EXPECT_TRUE(ran.result.is_null());
  EXPECT_EQ(ran.output, "");

  EXPECT_TRUE(Check("echo", Json::array({1, "two"})).ok());
}

TEST_F(BuiltinFunctionsTest, SleepSleepsAndReportsIt) {
  const absl::Time start = absl::Now();
  const Ran ran = Call("sleep", {{"ms", 30}});
  ASSERT_TRUE(ran.status.ok()) << ran.status;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_EQ(ran.result, Json({{"slept_ms", 30}}));
}

TEST_F(BuiltinFunctionsTest, SleepStopsEarlyWhenCancelled) {
  CancellationToken token;
  const absl::Time start = absl::Now();
  Ran ran;
  {
    CancelLater cancel(token, absl::Milliseconds(20));
    ran = Call("sleep", {{"ms", 10000}}, "", &token);
  }
  EXPECT_EQ(ran.status.code(), absl::StatusCode::kCancelled) << ran.status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // Already cancelled: returns at once.
  const absl::Time again = absl::Now();
  ran = Call("sleep", {{"ms", 10000}}, "", &token);
  EXPECT_EQ(ran.status.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - again, absl::Seconds(1));
}

TEST_F(BuiltinFunctionsTest, FailEndsWithTheGivenMessage) {
  Ran ran = Call("fail", {{"message", "disk on fire"}});
  EXPECT_FALSE(ran.status.ok());
  EXPECT_EQ(ran.status.message(), "disk on fire");

  ran = Call("fail", Json::object());
  EXPECT_FALSE(ran.status.ok());
  EXPECT_FALSE(ran.status.message().empty());

  const TaskSnapshot done =
      RunThroughExecutor(MakeSpec("fail", {{"message", "disk on fire"}}));
  EXPECT_EQ(done.state, TaskState::kFailed);
  ASSERT_NE(done.outcome, nullptr);
  EXPECT_EQ(done.outcome->error.message, "disk on fire");
}

TEST_F(BuiltinFunctionsTest, Sha256OfInputOrText) {
  Ran ran = Call("sha256", Json::object(), "abc");
  ASSERT_TRUE(ran.status.ok()) << ran.status;
  EXPECT_EQ(ran.result, kAbcDigest);

  ran = Call("sha256", {{"text", "abc"}});
  ASSERT_TRUE(ran.status.ok()) << ran.status;
  EXPECT_EQ(ran.result, kAbcDigest);

  ran = Call("sha256", Json(nullptr), "");
  ASSERT_TRUE(ran.status.ok()) << ran.status;
  EXPECT_EQ(ran.result, kEmptyDigest);

  // Binary input, NUL bytes included, is hashed as is.
  const Ran with_nul = Call("sha256", Json(nullptr), std::string("a\0c", 3));
  ASSERT_TRUE(with_nul.status.ok());
  EXPECT_NE(with_nul.result, kAbcDigest);
  EXPECT_EQ(with_nul.result.get<std::string>().size(), 64u);

  TaskSpec spec = MakeSpec("sha256");
  spec.input = "abc";
  TaskSnapshot done = RunThroughExecutor(spec);
  ASSERT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.outcome->result, kAbcDigest);

  done = RunThroughExecutor(MakeSpec("sha256", {{"text", "abc"}}));
  ASSERT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.outcome->result, kAbcDigest);
}

TEST_F(BuiltinFunctionsTest, PrimesCountsPrimesUpToN) {
  const std::vector<std::pair<int, int>> cases = {
      {0, 0},  {1, 0},    {2, 1},      {3, 2},
      {10, 4}, {100, 25}, {1000, 168}, {7919, 1000}};
  for (const auto& [n, count] : cases) {
    const Ran ran = Call("primes", {{"n", n}});
    ASSERT_TRUE(ran.status.ok()) << "n=" << n << ": " << ran.status;
    EXPECT_EQ(ran.result, count) << "n=" << n;
  }
  const TaskSnapshot done =
      RunThroughExecutor(MakeSpec("primes", {{"n", 100}}));
  ASSERT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.outcome->result, 25);
}

TEST_F(BuiltinFunctionsTest, PrimesStopsWhenCancelled) {
  CancellationToken token;
  token.Cancel();
  const absl::Time start = absl::Now();
  const Ran ran = Call("primes", {{"n", 50'000'000}}, "", &token);
  EXPECT_EQ(ran.status.code(), absl::StatusCode::kCancelled) << ran.status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(BuiltinFunctionsTest, SpinBusyLoopsForTheGivenTime) {
  const absl::Time start = absl::Now();
  const Ran ran = Call("spin", {{"ms", 30}});
  ASSERT_TRUE(ran.status.ok()) << ran.status;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_EQ(ran.result, Json({{"spun_ms", 30}}));
}

TEST_F(BuiltinFunctionsTest, SpinStopsEarlyWhenCancelled) {
  CancellationToken token;
  const absl::Time start = absl::Now();
  Ran ran;
  {
    CancelLater cancel(token, absl::Milliseconds(20));
    ran = Call("spin", {{"ms", 10000}}, "", &token);
  }
  EXPECT_EQ(ran.status.code(), absl::StatusCode::kCancelled) << ran.status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(BuiltinFunctionsTest, ArgsChecksAcceptGoodArgs) {
  EXPECT_TRUE(Check("sleep", {{"ms", 0}}).ok());
  EXPECT_TRUE(Check("sleep", {{"ms", 10.0}}).ok());  // integral number
  EXPECT_TRUE(Check("spin", {{"ms", 5}}).ok());
  EXPECT_TRUE(Check("primes", {{"n", 0}}).ok());
  EXPECT_TRUE(Check("primes", {{"n", 100}}).ok());
  EXPECT_TRUE(Check("fail", {{"message", "m"}}).ok());
  EXPECT_TRUE(Check("fail", Json::object()).ok());
  EXPECT_TRUE(Check("fail", Json(nullptr)).ok());
  EXPECT_TRUE(Check("sha256", {{"text", ""}}).ok());
  EXPECT_TRUE(Check("sha256", Json(nullptr), "bytes").ok());
}

TEST_F(BuiltinFunctionsTest, ArgsChecksNameTheWrongField) {
  struct Case {
    std::string function;
    Json args;
    std::string field;
  };
  const std::vector<Case> cases = {
      // Missing.
      {"sleep", Json::object(), "ms"},
      {"sleep", Json(nullptr), "ms"},
      {"spin", {{"msec", 5}}, "ms"},
      {"primes", Json::object(), "n"},
      // Wrong type.
      {"sleep", {{"ms", "100"}}, "ms"},
      {"sleep", {{"ms", true}}, "ms"},
      {"sleep", {{"ms", 1.5}}, "ms"},
      {"spin", {{"ms", Json::array({1})}}, "ms"},
      {"primes", {{"n", "100"}}, "n"},
      {"fail", {{"message", 3}}, "message"},
      {"sha256", {{"text", Json::object()}}, "text"},
      // Out of range.
      {"sleep", {{"ms", -1}}, "ms"},
      {"sleep", {{"ms", 1e12}}, "ms"},
      {"spin", {{"ms", -5}}, "ms"},
      {"primes", {{"n", -1}}, "n"},
      {"primes", {{"n", 1'000'000'000'000}}, "n"},
  };
  for (const Case& c : cases) {
    const absl::Status status = Check(c.function, c.args);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << c.function << " " << c.args;
    EXPECT_THAT(std::string(status.message()),
                AllOf(HasSubstr(c.function), HasSubstr("args." + c.field)))
        << c.args;
  }
}

TEST_F(BuiltinFunctionsTest, ArgsThatAreNotAnObjectAreRejected) {
  for (const char* function : {"sleep", "spin", "primes", "fail", "sha256"}) {
    const absl::Status status = Check(function, Json::array({1, 2}));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << function;
    EXPECT_THAT(std::string(status.message()), HasSubstr("object")) << function;
  }
}

TEST_F(BuiltinFunctionsTest, SubmitRefusesBadArgsWithTheFieldName) {
  ExecutorOptions options;
  options.pools = {ThreadPoolConfig("default", 1)};
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(options, registry_);
  ASSERT_TRUE(executor.ok()) << executor.status();
  const absl::Status status =
      (*executor)->Submit(MakeSpec("primes", {{"n", "lots"}})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("args.n"));
}

}  // namespace
}  // namespace remex::functions
