// The examples work: a custom server binary serves its own function next to
// the built-ins, and the SDK quickstart runs against a real server.
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace {

using remex::testing::ServerProcess;

std::unique_ptr<ServerProcess> StartCustomServer() {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::StartBinary(CUSTOM_SERVER_PATH);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(CustomServerTest, RunsItsOwnFunctionBesideTheBuiltins) {
  std::unique_ptr<ServerProcess> server = StartCustomServer();
  ASSERT_NE(server, nullptr);
  remex::Client client(server->address());

  remex::TaskResult counted =
      client
          .Submit("word_count",
                  remex::Json(R"({"text": "to be or not to be"})"))
          .get();
  const auto& fields = counted.value().struct_value().fields();
  EXPECT_EQ(fields.at("to").number_value(), 2);
  EXPECT_EQ(fields.at("be").number_value(), 2);
  EXPECT_EQ(fields.at("or").number_value(), 1);

  EXPECT_EQ(client.Submit("echo", remex::Json("[1]")).get().json(), "[1]");
}

TEST(CustomServerTest, ItsArgumentCheckAnswersInvalidArgument) {
  std::unique_ptr<ServerProcess> server = StartCustomServer();
  ASSERT_NE(server, nullptr);
  remex::Client client(server->address());

  absl::StatusOr<remex::Future> future =
      client.TrySubmit("word_count", remex::Json(R"({"text": 5})"));
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(future.status().message().find("args.text"), std::string::npos)
      << future.status();
}

TEST(SdkQuickstartTest, RunsAgainstARealServer) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<remex::testing::ProcessResult> run =
      remex::testing::RunProcess({SDK_QUICKSTART_PATH, (*server)->address()},
                                 absl::Seconds(60));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 0) << run->out << run->err;
  EXPECT_NE(run->out.find("9592"), std::string::npos) << run->out;
  // WaitAny hands the results over in the order the tasks end.
  const size_t echo = run->out.find("ended: echo \"hello\"");
  const size_t short_sleep = run->out.find("ended: sleep {\"slept_ms\":100}");
  const size_t long_sleep = run->out.find("ended: sleep {\"slept_ms\":300}");
  ASSERT_NE(long_sleep, std::string::npos) << run->out;
  EXPECT_LT(echo, short_sleep) << run->out;
  EXPECT_LT(short_sleep, long_sleep) << run->out;
}

TEST(FanOutFanInTest, BothWaysSumTheSameCounts) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<remex::testing::ProcessResult> run =
      remex::testing::RunProcess({FAN_OUT_FAN_IN_PATH, (*server)->address()},
                                 absl::Seconds(60));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 0) << run->out << run->err;
  // pi(10000) + pi(20000) + ... + pi(80000).
  EXPECT_NE(run->out.find("map total: 36901\n"), std::string::npos) << run->out;
  EXPECT_NE(run->out.find("then total: 36901\n"), std::string::npos)
      << run->out;
}

}  // namespace
