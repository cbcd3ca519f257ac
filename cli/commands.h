// The commands of the `remex` tool, each run after the command line parsed
// (cli/main.cc): they make the RPCs, print the answer on stdout and errors on
// stderr, and return the exit code.
#ifndef REMEX_CLI_COMMANDS_H_
#define REMEX_CLI_COMMANDS_H_

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/output.h"
#include "remex/client.h"
#include "remex/v1/executor.pb.h"

namespace remex::cli {

// Exit codes of `remex`. When one command meets several outcomes (several
// ids), the first of 1, 3, 4 that applies wins.
inline constexpr int kExitOk = 0;
// An RPC failed (server unreachable, unknown id, refused submit, ...).
inline constexpr int kExitRpcError = 1;
// The command line is wrong; nothing was sent.
inline constexpr int kExitUsage = 2;
// submit --wait, await, watch: a task ended FAILED, CANCELLED, TIMED_OUT or
// WORKER_LOST.
inline constexpr int kExitTaskNotSucceeded = 3;
// submit --wait, await, watch: --timeout passed with a task not ended.
inline constexpr int kExitStillRunning = 4;

// Prints "remex: CODE: message" for a failed RPC on stderr; returns
// kExitRpcError.
int ReportRpcError(const absl::Status& status);

// The ids that a command was given: each argument is an id, except "-",
// which stands for the ids on `input`, one per line (blank lines and
// surrounding spaces ignored). INVALID_ARGUMENT if "-" comes twice.
absl::StatusOr<std::vector<std::string>> ExpandIds(
    const std::vector<std::string>& arguments, std::istream& input);

// Whether a command given `arguments` prints {"tasks": [...]} rather than
// one task: with one id and no "-" it prints the task alone.
bool PrintsList(const std::vector<std::string>& arguments);

struct SubmitCommand {
  std::string function;
  std::optional<google::protobuf::Value> args;
  SubmitOptions options;
  bool wait = false;
  // With wait: how long to wait (then exit kExitStillRunning).
  absl::Duration timeout = absl::InfiniteDuration();
};
int RunSubmit(Client& client, const SubmitCommand& command,
              OutputFormat format);

// get, cancel and delete of `ids`; `list` as PrintsList says.
int RunGet(Client& client, const std::vector<std::string>& ids, bool list,
           OutputFormat format);
int RunCancel(Client& client, const std::vector<std::string>& ids, bool list,
              OutputFormat format);
// Prints {"deleted": [ids deleted]} (json), or the ids (id, table);
// nothing if one id was given (not `list`) and it failed.
int RunDelete(Client& client, const std::vector<std::string>& ids, bool list,
              OutputFormat format);
// Waits for every task of `ids` until `timeout` passes (one deadline for
// all) and prints them as they stand then.
int RunAwait(Client& client, const std::vector<std::string>& ids, bool list,
             absl::Duration timeout, OutputFormat format);

struct ListCommand {
  v1::ListRequest request;
  // Follow next_page_token to the last page.
  bool all = false;
};
// JSON: {"tasks": [...]}, with "nextPageToken" while more remain.
int RunList(Client& client, const ListCommand& command, OutputFormat format);

int RunFunctions(Client& client, OutputFormat format);

}  // namespace remex::cli

#endif  // REMEX_CLI_COMMANDS_H_
