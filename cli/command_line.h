// Command line parsing for the `remex` tool: a command word, its positional
// arguments and typed --flags, validated while parsing so that every usage
// error is found before any RPC is made.
#ifndef REMEX_CLI_COMMAND_LINE_H_
#define REMEX_CLI_COMMAND_LINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "remex/v1/executor.pb.h"

namespace remex::cli {

enum class FlagKind {
  kSwitch,    // --wait (no value)
  kString,    // --pool P
  kInt,       // --priority N (32-bit)
  kDuration,  // --ttl 2m (absl::ParseDuration)
  kJson,      // --args JSON
  kState,     // --state RUNNING (a remex.v1.State name, any case)
  kKeyValue,  // --label K=V
  kFile,      // --input-file PATH (the parser stores the file's contents)
};

struct FlagSpec {
  absl::string_view name;  // without "--"
  FlagKind kind;
  absl::string_view value_name = "";  // for usage, e.g. "DUR"
};

// Flags after parsing. A value type; not synchronized.
class CommandLine {
 public:
  const std::string& command() const { return command_; }
  const std::vector<std::string>& positional() const { return positional_; }

  bool Has(absl::string_view flag) const;
  // The last value given for `flag`, or `fallback`.
  std::string String(absl::string_view flag, std::string fallback = "") const;
  // Every value given for `flag`, in order.
  std::vector<std::string> All(absl::string_view flag) const;
  int32_t Int(absl::string_view flag) const;
  absl::Duration Duration(absl::string_view flag,
                          absl::Duration fallback) const;
  v1::State State(absl::string_view flag) const;

 private:
  friend class Parser;

  std::string command_;
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
};

// The flags a command takes, or nullptr if `command` is not a command.
using FlagsOfCommand =
    std::function<const std::vector<FlagSpec>*(absl::string_view command)>;

// Parses `args` (argv without the program name). Flags may come before or
// after the command: `global_flags` anywhere, a command's flags after it;
// "--flag VALUE" and "--flag=VALUE" both work; "-h" means "--help".
// Returns INVALID_ARGUMENT naming the problem. A missing command is not an
// error here (command() is empty).
absl::StatusOr<CommandLine> ParseCommandLine(
    std::span<const absl::string_view> args,
    const std::vector<FlagSpec>& global_flags,
    const FlagsOfCommand& flags_of_command);

}  // namespace remex::cli

#endif  // REMEX_CLI_COMMAND_LINE_H_
