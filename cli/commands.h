// The commands of the `remex` tool.
#ifndef REMEX_CLI_COMMANDS_H_
#define REMEX_CLI_COMMANDS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/command_line.h"
#include "remex/client.h"

namespace remex::cli {

// Exit codes of `remex`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTaskNotSucceeded = 3;

struct Command {
  absl::string_view name;
  // Positional arguments, e.g. {"ID"}; all are required.
  std::vector<absl::string_view> arguments;
  std::vector<FlagSpec> flags;
  // One line per flag for --help, after the synopsis.
  absl::string_view help;
  // Runs the command, printing its answer on stdout. Returns the exit code,
  // or the status of a failed RPC.
  absl::StatusOr<int> (*run)(Client& client, const CommandLine& line);
};

// Every command, in the order --help lists them.
const std::vector<Command>& Commands();
const Command* FindCommand(absl::string_view name);

}  // namespace remex::cli

#endif  // REMEX_CLI_COMMANDS_H_
