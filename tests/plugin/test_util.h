// Helpers shared by the plugin and command function tests.
#ifndef REMEX_TESTS_PLUGINS_TEST_UTIL_H_
#define REMEX_TESTS_PLUGINS_TEST_UTIL_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/subprocess.h"

namespace remex::testing {

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns
// its last value.
inline bool WaitUntil(absl::FunctionRef<bool()> condition,
                      absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// A fresh directory under the test's temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("remex_plugins_", getpid(), "_", counter++);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

  // Writes `text` to the file `name` in the directory; returns its path.
  std::string Write(absl::string_view name, absl::string_view text) const {
    const std::filesystem::path file = path_ / std::string(name);
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

// Runs remex-server with `args` and expects it to exit on its own.
inline ProcessResult RunServerExpectingExit(
    const std::vector<std::string>& args) {
  std::vector<std::string> argv = {REMEX_SERVER_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<ProcessResult> result = RunProcess(argv, absl::Seconds(30));
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult{};
}

// The task once it is terminal (or as it stands after `timeout`).
inline v1::Task AwaitTask(Client& client, const std::string& id,
                          absl::Duration timeout = absl::Seconds(30)) {
  absl::StatusOr<v1::Task> task = client.Await(id, timeout);
  EXPECT_TRUE(task.ok()) << task.status();
  return task.ok() ? *task : v1::Task();
}

// Waits until the task is RUNNING; false if it did not get there.
inline bool WaitUntilRunning(Client& client, const std::string& id) {
  return WaitUntil([&] {
    absl::StatusOr<v1::Task> task = client.Get(id);
    return task.ok() && task->state() == v1::RUNNING;
  });
}

}  // namespace remex::testing

#endif  // REMEX_TESTS_PLUGINS_TEST_UTIL_H_
