// Helpers shared by the executor tests: bounded waits on tasks reaching a
// terminal state, pool configs and task specs. (Waits on any condition:
// tests/testing/wait.h.)
#ifndef REMEX_TESTS_EXECUTOR_EXECUTOR_TEST_UTIL_H_
#define REMEX_TESTS_EXECUTOR_EXECUTOR_TEST_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/executor/executor.h"
#include "server/executor/pool.h"
#include "server/executor/task.h"
#include "tests/testing/wait.h"

namespace remex::executor::testing {

// Waits (through Executor::OnDone) until task `id` is terminal and returns
// its terminal snapshot; DEADLINE_EXCEEDED if it is not within `timeout`,
// NOT_FOUND if the executor does not know the id.
absl::StatusOr<TaskSnapshot> AwaitTerminal(
    Executor& executor, const std::string& id,
    absl::Duration timeout = remex::testing::kWaitTimeout);

// A thread pool config.
PoolConfig ThreadPoolConfig(std::string name, int workers,
                            size_t max_queue = 1000);

// A spec for `function` with `args`, on the function's default pool.
TaskSpec MakeSpec(std::string function, Json args = Json::object());

}  // namespace remex::executor::testing

#endif  // REMEX_TESTS_EXECUTOR_EXECUTOR_TEST_UTIL_H_
