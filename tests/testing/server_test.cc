#include "tests/testing/server_test.h"

#include <signal.h>

#include <iostream>
#include <utility>

namespace remex::testing {

std::unique_ptr<ServerProcess> StartServer(std::vector<std::string> args) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(std::move(args));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

ProcessResult RunServerExpectingExit(const std::vector<std::string>& args,
                                     absl::Duration timeout) {
  std::vector<std::string> argv = {REMEX_SERVER_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<ProcessResult> result = RunProcess(argv, timeout);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult{};
}

void ServerTest::TearDown() {
  CloseConnections();
  if (server_ != nullptr && !exited_) {
    EXPECT_EQ(server_->Signal(SIGTERM), 0);
    ExpectExitsZero(longest_shutdown_);
  }
  if (HasFailure() && server_ != nullptr) {
    std::cerr << "remex-server output:\n" << server_->ServerOutput();
  }
  server_.reset();
}

void ServerTest::StartServer(std::vector<std::string> args) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(std::move(args));
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
}

absl::StatusOr<int> ServerTest::WaitForExit(absl::Duration timeout) {
  exited_ = true;
  return server_->Wait(timeout);
}

void ServerTest::ExpectExitsZero(absl::Duration timeout) {
  const absl::StatusOr<int> exit_code = WaitForExit(timeout);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
}

}  // namespace remex::testing
