// Tests against a real remex-server: a gtest fixture that ends each test
// with a clean shutdown whatever tasks are left, and servers started or run
// to their exit with the test's expectations.
#ifndef REMEX_TESTS_TESTING_SERVER_TEST_H_
#define REMEX_TESTS_TESTING_SERVER_TEST_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace remex::testing {

// Starts remex-server with `args`; fails the test and returns null if it
// does not start.
std::unique_ptr<ServerProcess> StartServer(std::vector<std::string> args = {});

// Runs remex-server with `args` and expects it to exit on its own within
// `timeout`.
ProcessResult RunServerExpectingExit(
    const std::vector<std::string>& args,
    absl::Duration timeout = absl::Seconds(30));

// Starts the server on request (StartServer); TearDown sends it SIGTERM and
// expects exit code 0 within `longest_shutdown`, unless the test already
// waited for its exit, and prints its output if the test failed. Not
// thread-safe: the test's own thread uses it.
class ServerTest : public ::testing::Test {
 protected:
  explicit ServerTest(absl::Duration longest_shutdown)
      : longest_shutdown_(longest_shutdown) {}

  void TearDown() override;

  // Starts remex-server with `args` (after --listen 127.0.0.1:0); fails the
  // test (fatally) if it does not start.
  void StartServer(std::vector<std::string> args);

  // Writes `text` to a file of this test (`name` in its temp dir); returns
  // its path, e.g. for --config.
  std::string WriteFile(absl::string_view name, absl::string_view text) {
    return temp_dir_.Write(name, text);
  }

  // Waits up to `timeout` for the server to exit (after a signal); TearDown
  // then leaves it alone.
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);
  // The same, expecting exit code 0.
  void ExpectExitsZero(absl::Duration timeout);

  ServerProcess& server() { return *server_; }
  pid_t server_pid() const { return server_->pid(); }

 private:
  // Closes the test's connections before the server stops (it waits up to
  // 250 ms for open ones). Called by TearDown.
  virtual void CloseConnections() {}

  const absl::Duration longest_shutdown_;
  TempDir temp_dir_;
  std::unique_ptr<ServerProcess> server_;
  bool exited_ = false;
};

// A gtest fixture for suites whose tests share one server: the suite's
// SetUpTestSuite calls StartSharedServer; each test fails at once if the
// server did not start. Suites run one at a time, so one slot serves every
// suite of the binary.
class SharedServerTest : public ::testing::Test {
 protected:
  static void StartSharedServer(std::vector<std::string> args = {}) {
    server_ = StartServer(std::move(args));
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static inline std::unique_ptr<ServerProcess> server_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_SERVER_TEST_H_
