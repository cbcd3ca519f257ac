// Command functions: functions declared in the server's config that run an
// executable, never through a shell.
//
//   {"name": "tr", "command": ["/usr/bin/tr", "{from}", "{to}"]}
//
// A task `tr` with args {"from": "a-z", "to": "A-Z"} runs
// `/usr/bin/tr a-z A-Z` with the task's input on its stdin. Each element of
// the command is one argv element, whatever the args hold (no splitting, no
// globbing, no quoting to get wrong).
#ifndef REMEX_SERVER_FUNCTIONS_COMMAND_FUNCTION_H_
#define REMEX_SERVER_FUNCTIONS_COMMAND_FUNCTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/executor/function_registry.h"

namespace remex::functions {

struct CommandFunctionConfig {
  std::string name;
  // Empty: "runs " and the command.
  std::string description;
  // The argv template. command[0] is the executable: an absolute path, with
  // no placeholders. Any element may hold placeholders `{arg}` (a name of
  // letters, digits and `_`), replaced by the task's args.arg: a string as
  // it is, a number in decimal (integers without a fraction), a boolean as
  // true/false. `{{` and `}}` stand for literal braces.
  std::vector<std::string> command;
  // Empty: the server's default pool.
  std::string pool;
  // The run_timeout of tasks submitted without one; infinite: none.
  absl::Duration run_timeout = absl::InfiniteDuration();
  // After a cancel or timeout the command's process group gets SIGTERM, and
  // SIGKILL once this has passed.
  absl::Duration cancel_grace = absl::Seconds(2);
  // The command's whole environment besides PATH=/usr/local/bin:/usr/bin:/bin
  // (which this may override): the server's own is not passed on.
  std::map<std::string, std::string> env;
  // Absolute; empty: the server's working directory.
  std::string working_dir;
  // Longest stdout, and longest stderr, kept; the rest is read and dropped.
  int64_t max_output_bytes = 1 << 20;
};

// Checks `config` (INVALID_ARGUMENT naming the problem: a bad name, a
// command[0] that is not an absolute path to an executable file, a bad
// placeholder, a bad env name or working_dir, ...) and makes the function.
//
// Its args check refuses (INVALID_ARGUMENT) args that are not an object, an
// arg that no placeholder uses, a missing one, and values that are not a
// string, number or boolean. Its body runs the command:
//   - stdin: the task's input; stdout and stderr captured (each bounded by
//     max_output_bytes);
//   - exit 0: SUCCEEDED with result {"exit_code": 0, "stdout": TEXT or null
//     when stdout is not valid UTF-8, "stderr": TEXT, "stdout_truncated",
//     "stderr_truncated"} and output = the raw stdout bytes;
//   - another exit code or a signal: FAILED, the message naming the code
//     (or signal) and the tail of stderr;
//   - cancel, run_timeout or shutdown: SIGTERM to the process group, SIGKILL
//     after cancel_grace; the child is always reaped.
// When the command exits, whatever it left running in its process group is
// killed.
absl::StatusOr<executor::FunctionSpec> MakeCommandFunction(
    const CommandFunctionConfig& config);

}  // namespace remex::functions

#endif  // REMEX_SERVER_FUNCTIONS_COMMAND_FUNCTION_H_
