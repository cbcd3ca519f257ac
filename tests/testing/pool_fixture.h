// An Executor with one pool of either kind, in a test binary that is also
// its own process-pool worker: the fixture of the pool contract suite and of
// the process pool tests.
#ifndef REMEX_TESTS_TESTING_POOL_FIXTURE_H_
#define REMEX_TESTS_TESTING_POOL_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/executor/executor.h"
#include "server/executor/pool.h"
#include "server/executor/task.h"

namespace remex::testing {

// Fills a registry with the functions of a test binary; the same in the test
// and in its workers.
using RegisterFunctions = void (*)(executor::FunctionRegistry& registry);

// The main of a test binary with process pools: serves as a worker with the
// functions of `register_functions` when a pool started it as one, else runs
// the tests.
int PoolTestMain(int argc, char** argv, RegisterFunctions register_functions);

// Owns the executor and the temporary files of one test. Not thread-safe:
// the test's own thread uses it.
class PoolFixture {
 protected:
  explicit PoolFixture(RegisterFunctions register_functions);
  ~PoolFixture();

  // Starts the executor with one pool "default" of `config`'s kind; process
  // workers are this binary (see PoolTestMain).
  void Start(executor::PoolConfig config);

  std::string Submit(executor::TaskSpec spec);

  executor::TaskSnapshot Await(const std::string& id,
                               absl::Duration timeout = absl::Seconds(20));

  bool WaitForState(const std::string& id, executor::TaskState state);

  executor::PoolStats Stats() const;

  // A fresh path under TMPDIR, removed at the end of the test.
  std::string NewPath(const std::string& name);

  executor::FunctionRegistry registry_;
  std::unique_ptr<executor::Executor> executor_;
  std::vector<std::string> paths_;
};

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_POOL_FIXTURE_H_
