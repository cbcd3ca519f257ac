// Waits on the tasks of a real remex-server through the SDK (link remex::sdk
// and remex::testing).
#ifndef REMEX_TESTS_TESTING_SDK_UTIL_H_
#define REMEX_TESTS_TESTING_SDK_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "remex/remex.h"
#include "tests/testing/wait.h"

namespace remex::testing {

// The task once it is terminal (or as it stands after `timeout`).
inline v1::Task AwaitTask(Client& client, const std::string& id,
                          absl::Duration timeout = absl::Seconds(30)) {
  absl::StatusOr<v1::Task> task = client.Await(id, timeout);
  EXPECT_TRUE(task.ok()) << task.status();
  return task.ok() ? *task : v1::Task();
}

// Submits `function(args)` and returns the task once it is terminal; an
// empty Task (and a test failure) if the submit is refused.
inline v1::Task RunTask(Client& client, const std::string& function,
                        std::string_view args, SubmitOptions options = {}) {
  absl::StatusOr<Future> future =
      client.TrySubmit(function, Json(args), options);
  EXPECT_TRUE(future.ok()) << future.status();
  if (!future.ok()) return v1::Task();
  return AwaitTask(client, future->id());
}

// Waits (20 s at most) until the task is RUNNING; false if it did not get
// there.
inline bool WaitUntilRunning(Client& client, const std::string& id) {
  return WaitUntil(
      [&] {
        absl::StatusOr<v1::Task> task = client.Get(id);
        return task.ok() && task->state() == v1::RUNNING;
      },
      absl::Seconds(20));
}

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_SDK_UTIL_H_
