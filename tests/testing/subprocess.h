// Child processes for tests: posix_spawn (never fork, tests are threaded)
// with stdout and stderr on pipes.
#ifndef REMEX_TESTS_TESTING_SUBPROCESS_H_
#define REMEX_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace remex::testing {

// A spawned child and the read ends (close-on-exec) of its stdout and
// stderr pipes. The caller owns the fds and must reap the pid.
struct SpawnedProcess {
  pid_t pid = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// Starts argv[0] (a path) with `argv`, the current environment plus
// `extra_env` ("NAME=VALUE", replacing a variable of the same name), stdin
// from /dev/null.
absl::StatusOr<SpawnedProcess> Spawn(
    const std::vector<std::string>& argv,
    const std::vector<std::string>& extra_env = {});

// Starts argv[0] (a path) with `argv` and the current environment in a
// process group of its own, stdin from /dev/null, stdout and stderr
// appended to `log_path`. The caller must reap the pid.
absl::StatusOr<pid_t> SpawnInOwnGroup(const std::vector<std::string>& argv,
                                      const std::string& log_path);

// Waits up to `timeout` for `pid` to exit; then kills it with SIGKILL, reaps
// it and returns DEADLINE_EXCEEDED. Returns the exit code, or 128 + the
// signal number if a signal ended it.
absl::StatusOr<int> WaitForExit(pid_t pid, absl::Duration timeout);

// Reads `fds` until every one reaches EOF or `stop()` returns true (checked
// at least every 50 ms), passing what it reads to `sink(index in fds, data,
// size)`. Does not close the fds.
void PumpPipes(const std::vector<int>& fds,
               const std::function<void(size_t, const char*, size_t)>& sink,
               const std::function<bool()>& stop);

// Everything a finished process printed, and how it ended.
struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` to completion, bounded by `timeout` (then killed: error).
absl::StatusOr<ProcessResult> RunProcess(
    const std::vector<std::string>& argv, absl::Duration timeout,
    const std::vector<std::string>& extra_env = {});

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_SUBPROCESS_H_
