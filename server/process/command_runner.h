// Runs an executable as a child process of a multi-threaded server: no
// fork(), no shell, its own process group, bounded capture of its output,
// and a cancellation that ends with the child killed and reaped. Plain
// POSIX; what command functions (command_function.h) run on.
#ifndef REMEX_SERVER_PROCESS_COMMAND_RUNNER_H_
#define REMEX_SERVER_PROCESS_COMMAND_RUNNER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/executor/cancellation.h"
#include "server/process/spawn.h"

namespace remex::process {

// One run of a command.
struct CommandRun {
  // argv[0] is an absolute path.
  std::vector<std::string> argv;
  // "NAME=VALUE", the whole environment.
  std::vector<std::string> env;
  // Empty: the caller's (or see private_dir_in).
  std::string working_dir;
  // Non-empty (an absolute path; working_dir must then be empty): the child
  // runs in a fresh directory of its own made in this one, mode 0700, owned
  // by run_as if set; removed with all it holds once the child is reaped,
  // however it ended (exit, cancel, timeout).
  std::string private_dir_in;
  // Set: the child runs as this account (SpawnChild's ChildSpec::run_as).
  std::optional<Credentials> run_as;
  std::string stdin_data;
  int64_t max_output_bytes = 1 << 20;
  absl::Duration cancel_grace = absl::Seconds(2);
};

// How a command ended and what it printed.
struct CommandResult {
  // The exit status, or -1 when a signal ended it.
  int exit_code = -1;
  // The signal that ended it, or 0.
  int signal = 0;
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  // The token was set and the command was told to stop.
  bool cancelled = false;
};

// Runs `run` to completion on this thread: started by SpawnChild (spawn.h:
// posix_spawn, the caller may be multi-threaded), the child in a process
// group of its own, with the default signal dispositions and an empty signal
// mask. Once `cancellation` is set, SIGTERM to the group, then SIGKILL after
// run.cancel_grace. When the child exits, whatever it left running in its
// group is killed, and what is in its pipes is read without waiting for
// descendants that escaped the group. Reaps only the child it started.
// While it runs, its group is registered with this process's janitor, if
// any (janitor.h), so that it is killed if the server dies; in a process
// worker, the worker's session covers it instead. FAILED_PRECONDITION if
// the command could not be started (or its private directory not made).
absl::StatusOr<CommandResult> RunCommand(
    const CommandRun& run, const executor::CancellationToken& cancellation);

}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_COMMAND_RUNNER_H_
