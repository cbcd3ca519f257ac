// remex — command line client of a remex server. See `remex --help`.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "cli/command_line.h"
#include "cli/commands.h"
#include "remex/client.h"

namespace remex::cli {
namespace {

constexpr absl::string_view kDefaultServer = "localhost:50051";

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* const flags =
      new std::vector<FlagSpec>{{"server", FlagKind::kString, "ADDR"},
                                {"help", FlagKind::kSwitch},
                                {"tls", FlagKind::kSwitch},
                                {"tls-ca", FlagKind::kFile, "FILE"},
                                {"tls-cert", FlagKind::kFile, "FILE"},
                                {"tls-key", FlagKind::kFile, "FILE"},
                                {"token", FlagKind::kString, "TOKEN"}};
  return *flags;
}

// "  remex NAME ARGUMENTS [--flag VALUE]...", wrapped at 80 columns.
std::string Synopsis(const Command& command) {
  std::string synopsis = absl::StrCat("  remex ", command.name);
  size_t line_start = 0;
  const auto append = [&](absl::string_view word) {
    if (synopsis.size() - line_start + word.size() + 1 > 80) {
      line_start = synopsis.size() + 1;
      absl::StrAppend(&synopsis, "\n       ");
    }
    absl::StrAppend(&synopsis, " ", word);
  };
  for (absl::string_view argument : command.arguments) append(argument);
  for (const FlagSpec& flag : command.flags) {
    append(absl::StrCat("[--", flag.name, flag.value_name.empty() ? "" : " ",
                        flag.value_name, "]",
                        flag.kind == FlagKind::kKeyValue ? "..." : ""));
  }
  return synopsis;
}

std::string Usage() {
  std::string usage =
      "Usage: remex [--server ADDR] [TLS and token flags] COMMAND [ARGS]\n"
      "\n"
      "Talks to a remex server at ADDR (default: $REMEX_SERVER, else " +
      std::string(kDefaultServer) +
      ").\n--server may also come after the command. Prints the answer "
      "(a task,\nor a list) as JSON on stdout. Durations look like 500ms, 5s, "
      "2m, 1h.\n"
      "\n"
      "Connection flags (anywhere on the line):\n"
      "  --tls             TLS, trusting the system's CAs\n"
      "  --tls-ca FILE     TLS, trusting the PEM CAs in FILE\n"
      "  --tls-cert FILE   with --tls-key: present this PEM client\n"
      "                    certificate (servers with --tls-client-ca); implies "
      "TLS\n"
      "  --tls-key FILE    the PEM private key of --tls-cert\n"
      "  --token TOKEN     bearer token sent with every call (default:\n"
      "                    $REMEX_TOKEN; the flag wins). Without TLS it "
      "travels\n"
      "                    in clear\n"
      "\nCommands:\n";
  for (const Command& command : Commands()) {
    absl::StrAppend(&usage, "\n", Synopsis(command), "\n", command.help);
  }
  absl::StrAppend(
      &usage,
      "\nExit codes:\n"
      "  0  success\n"
      "  1  the RPC failed (one line 'remex: CODE: message' on stderr)\n"
      "  2  usage error\n"
      "  3  submit --wait or await: the task ended FAILED, CANCELLED,\n"
      "     TIMED_OUT or WORKER_LOST (the task is still printed)\n");
  return usage;
}

// Reports `status` on stderr in one line and returns `exit_code`.
int Fail(int exit_code, const absl::Status& status) {
  std::cerr << "remex: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return exit_code;
}

int UsageError(absl::string_view message) {
  return Fail(kExitUsage, absl::InvalidArgumentError(
                              absl::StrCat(message, " (see remex --help)")));
}

// TLS and token from the flags and $REMEX_TOKEN.
absl::StatusOr<ClientOptions> ConnectionOptions(const CommandLine& line) {
  if (line.Has("tls-cert") != line.Has("tls-key")) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  ClientOptions options;
  options.tls = line.Has("tls") || line.Has("tls-ca") || line.Has("tls-cert");
  options.tls_root_certs = line.String("tls-ca");
  options.tls_cert_chain = line.String("tls-cert");
  options.tls_private_key = line.String("tls-key");
  const char* token = std::getenv("REMEX_TOKEN");
  options.token = line.String("token", token != nullptr ? token : "");
  return options;
}

std::string ServerAddress(const CommandLine& line) {
  const char* from_environment = std::getenv("REMEX_SERVER");
  return line.String("server", from_environment != nullptr
                                   ? from_environment
                                   : std::string(kDefaultServer));
}

int Run(const std::vector<absl::string_view>& args) {
  const absl::StatusOr<CommandLine> line =
      ParseCommandLine(args, GlobalFlags(), [](absl::string_view name) {
        const Command* command = FindCommand(name);
        return command != nullptr ? &command->flags : nullptr;
      });
  if (!line.ok()) return UsageError(line.status().message());
  if (line->Has("help") || line->command() == "help") {
    std::cout << Usage();
    return kExitOk;
  }
  if (line->command().empty()) return UsageError("missing command");
  const Command& command = *FindCommand(line->command());
  if (line->positional().size() != command.arguments.size()) {
    return UsageError(absl::StrCat(
        command.name, " takes ",
        command.arguments.empty() ? "no arguments"
                                  : absl::StrJoin(command.arguments, " ")));
  }
  absl::StatusOr<ClientOptions> options = ConnectionOptions(*line);
  if (!options.ok()) return UsageError(options.status().message());
  Client client(ServerAddress(*line), *std::move(options));
  const absl::StatusOr<int> exit_code = command.run(client, *line);
  if (!exit_code.ok()) return Fail(kExitRpcError, exit_code.status());
  return *exit_code;
}

}  // namespace
}  // namespace remex::cli

int main(int argc, char** argv) {
  return remex::cli::Run(std::vector<absl::string_view>(argv + 1, argv + argc));
}
