// Command functions: functions declared in the server's config that run an
// executable, never through a shell.
//
//   {"name": "tr", "command": ["/usr/bin/tr", "{from}", "{to}"]}
//
// A task `tr` with args {"from": "a-z", "to": "A-Z"} runs
// `/usr/bin/tr a-z A-Z` with the task's input on its stdin. Each element of
// the command is one argv element, whatever the args hold (no splitting, no
// globbing, no quoting to get wrong).
//
// What a client cannot do through its args, and what a command cannot reach:
//   - Choose an option: a value that fills a placeholder at the start of an
//     argv element (`{from}`, `{a}{b}`) must not make the element start with
//     '-' (`--help`, `-5`: a negative number too), unless the function sets
//     allow_option_values. A placeholder after a literal prefix
//     (`--name={n}`, `x{v}`) cannot start an option and takes any value.
//   - See the server's environment: the command's environment is only PATH
//     and `env`. The server makes itself (and its workers and janitor)
//     non-dumpable at start, so that a command running as the same uid (not
//     root) cannot read /proc/<server pid>/environ or /mem either.
//   - Run as the server's account, if `user`/`group` name another one (the
//     real isolation: a command as the server's uid can still read what the
//     server can read and signal it; as root, anything).
//   - Share a working directory: by default each run gets a fresh private
//     one, removed after it.
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
  // Absolute: every run of the command starts there. Empty (the default):
  // each run gets a fresh directory of its own, mode 0700 (owned by `user`
  // when set), made in $TMPDIR (or /tmp) of the server and removed with
  // everything in it once the command has ended, whatever ended it (only
  // the death of the process running the command leaves it behind: a
  // server killed with -9, a process-pool worker killed after the pool's
  // cancel_grace).
  std::string working_dir;
  // Lets a placeholder value make an argv element start with '-' (see
  // above). Off by default: the client would choose the command's options.
  bool allow_option_values = false;
  // The account the command runs as: a user name or a numeric uid, resolved
  // when the config is loaded (an unknown name is an error). Empty: the
  // server's. Needs the server to run as root, and /usr/bin/setpriv
  // (util-linux), which drops the privileges right before the exec. The
  // command gets no new privileges from setuid binaries.
  std::string user;
  // The command's group (its only supplementary group too): a group name or
  // a numeric gid. Empty: the primary group of `user` (a numeric uid with no
  // passwd entry then needs one); with no `user` either, the server's
  // groups. Setting only `group` keeps the server's uid.
  std::string group;
  // Longest stdout, and longest stderr, kept; the rest is read and dropped.
  int64_t max_output_bytes = 1 << 20;
};

// Checks `config` (INVALID_ARGUMENT naming the problem: a bad name, a
// command[0] that is not an absolute path to an executable file, a bad
// placeholder, a bad env name or working_dir, an unknown user or group, a
// user or group while the server is not root, ...) and makes the function.
//
// Its args check refuses (INVALID_ARGUMENT) args that are not an object, an
// arg that no placeholder uses, a missing one, values that are not a
// string, number or boolean, and a value that would start an argv element
// with '-' (unless allow_option_values). Its body runs the command:
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
