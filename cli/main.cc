// remex — command line client of a remex server. See `remex --help`.
//
// The command line is parsed by CLI11 (cli/main.cc) before any RPC: every
// usage error exits 2 with a plain message. The commands (cli/commands.h,
// cli/watch.h) then talk to the server through the SDK.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/completion.h"
#include "cli/output.h"
#include "cli/watch.h"
#include "remex/client.h"
#include "remex/json.h"

#ifndef REMEX_VERSION
#error "REMEX_VERSION must be defined (by cli/CMakeLists.txt)"
#endif

namespace remex::cli {
namespace {

// An IP address, not "localhost": resolving a name needs /etc/hosts or DNS,
// which a minimal container image may lack.
constexpr char kDefaultServer[] = "127.0.0.1:50051";

constexpr char kExitCodes[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  an RPC failed (one line 'remex: CODE: message' on stderr per "
    "failure)\n"
    "  2  usage error (nothing was sent)\n"
    "  3  submit --wait, await, watch IDS: a task ended FAILED, CANCELLED,\n"
    "     TIMED_OUT or WORKER_LOST (the tasks are still printed)\n"
    "  4  submit --wait, await, watch IDS: --timeout passed before a task "
    "ended\n"
    "     (the tasks are printed as they stand)\n"
    "  With several ids the first of 1, 3, 4 that applies wins.\n";

// Everything the command line says. Filled by CLI11 while parsing.
struct Flags {
  std::string server = kDefaultServer;
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string token;
  std::string output = "json";

  std::vector<std::string> ids;
  std::string function;
  std::string args;
  std::string input;
  std::string input_file;
  std::string pool;
  int32_t priority = 0;
  std::string queue_timeout;
  std::string run_timeout;
  int32_t max_attempts = 0;
  std::vector<std::string> labels;
  std::string ttl;
  bool wait = false;
  std::string timeout;
  std::string interval = "1s";
  std::string state;
  int32_t page_size = 0;
  std::string page_token;
  bool all = false;
  std::string shell;
  std::string help_command;
};

absl::Duration ToDuration(const std::string& text,
                          absl::Duration fallback = absl::ZeroDuration()) {
  absl::Duration duration = fallback;
  if (!text.empty()) (void)absl::ParseDuration(text, &duration);
  return duration;
}

const CLI::Validator& DurationValidator() {
  static const auto* const validator = new CLI::Validator(
      [](std::string& text) -> std::string {
        absl::Duration duration;
        if (!absl::ParseDuration(text, &duration) ||
            duration < absl::ZeroDuration()) {
          return absl::StrCat("'", text,
                              "' is not a duration (e.g. 500ms, 5s, 2m, 1h)");
        }
        return "";
      },
      "");
  return *validator;
}

// Adds option `name` of `command`, a duration kept as text in `target`.
CLI::Option* AddDurationOption(CLI::App* command, const std::string& name,
                               std::string& target, const std::string& help) {
  return command->add_option(name, target, help)
      ->check(DurationValidator())
      ->type_name("DUR");
}

const CLI::Validator& JsonValidator() {
  static const auto* const validator = new CLI::Validator(
      [](std::string& text) -> std::string {
        const absl::Status status = ParseJson(text).status();
        return status.ok() ? "" : absl::StrCat("not JSON: ", status.message());
      },
      "");
  return *validator;
}

const CLI::Validator& LabelValidator() {
  static const auto* const validator = new CLI::Validator(
      [](std::string& text) -> std::string {
        return absl::StrContains(text, '=')
                   ? ""
                   : absl::StrCat("'", text, "' is not KEY=VALUE");
      },
      "");
  return *validator;
}

// Accepts a state name in any case and makes it upper case.
const CLI::Validator& StateValidator() {
  static const auto* const validator = new CLI::Validator(
      [](std::string& text) -> std::string {
        text = absl::AsciiStrToUpper(text);
        v1::State state;
        if (!v1::State_Parse(text, &state)) {
          return absl::StrCat("'", text, "' is not a state (QUEUED, RUNNING, ",
                              "SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, ",
                              "WORKER_LOST)");
        }
        return "";
      },
      "");
  return *validator;
}

std::string StateNames() {
  std::vector<std::string> names;
  for (int i = v1::QUEUED; i <= v1::State_MAX; ++i) {
    names.push_back(v1::State_Name(static_cast<v1::State>(i)));
  }
  return absl::StrJoin(names, " ");
}

// The file's contents; a usage error if it cannot be read.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// Prints a usage error in one plain line and returns kExitUsage.
int UsageError(absl::string_view message) {
  std::cerr << "remex: " << message
            << "\nRun 'remex --help' (or 'remex COMMAND --help') for usage.\n";
  return kExitUsage;
}

void AddFilterFlags(CLI::App* command, Flags& flags) {
  command->add_option("--state", flags.state, "only tasks in this state")
      ->transform(StateValidator())
      ->type_name("STATE");
  command->add_option("--function", flags.function,
                      "only tasks of this function");
  command->add_option("--pool", flags.pool, "only tasks of this pool");
}

CLI::App* AddIdsCommand(CLI::App& app, Flags& flags, const std::string& name,
                        const std::string& description) {
  CLI::App* command = app.add_subcommand(name, description);
  command
      ->add_option("ID", flags.ids,
                   "task ids; '-' reads ids from stdin, one per line")
      ->required();
  return command;
}

// The command line tool's flags and commands, bound to `flags`.
void Define(CLI::App& app, Flags& flags) {
  app.description(
      "Command line client of a remex server: submits, follows and manages "
      "tasks.\nPrints tasks as JSON (-o json, the default), as a table "
      "(-o table)\nor as ids, one per line (-o id). Durations look like "
      "500ms, 5s, 2m, 1h.\nGlobal flags may come before or after the "
      "command.\n");
  auto formatter = std::make_shared<CLI::Formatter>();
  formatter->label("SUBCOMMAND", "COMMAND");
  formatter->label("Subcommands", "Commands");
  formatter->label("TEXT", "STR");
  app.formatter(formatter);
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", absl::StrCat("remex ", REMEX_VERSION),
                       "print the version and exit");
  app.set_help_all_flag("--help-all", "print the help of every command");
  app.footer(
      absl::StrCat("Examples:\n"
                   "  remex submit echo --args '{\"x\": 1}' --wait\n"
                   "  remex list --state RUNNING -o table\n"
                   "  remex list --state QUEUED -o id | remex cancel -\n"
                   "  remex watch ID1 ID2\n"
                   "  source <(remex completion bash)\n\n",
                   kExitCodes));

  app.add_option("--server", flags.server,
                 absl::StrCat("server address HOST:PORT (default ",
                              kDefaultServer, ")"))
      ->envname("REMEX_SERVER");
  app.add_flag("--tls", flags.tls, "TLS, trusting the system's CAs");
  app.add_option("--tls-ca", flags.tls_ca, "TLS, trusting the PEM CAs in FILE")
      ->type_name("FILE");
  app.add_option("--tls-cert", flags.tls_cert,
                 "with --tls-key: present this PEM client certificate "
                 "(servers with --tls-client-ca); implies TLS")
      ->type_name("FILE");
  app.add_option("--tls-key", flags.tls_key,
                 "the PEM private key of --tls-cert")
      ->type_name("FILE");
  app.add_option("--token", flags.token,
                 "bearer token sent with every call; without TLS it "
                 "travels in clear")
      ->envname("REMEX_TOKEN");
  app.add_option("-o,--output", flags.output,
                 "output: json (default), table or id; watch: a live table "
                 "on a terminal, JSON lines otherwise")
      ->check(CLI::IsMember({"json", "table", "id"}))
      ->type_name("FORMAT");

  CLI::App* submit = app.add_subcommand(
      "submit", "Submits a task and prints it (QUEUED or later)");
  submit->add_option("FUNCTION", flags.function, "the function to run")
      ->required();
  submit->add_option("--args", flags.args, "arguments, any JSON value")
      ->check(JsonValidator())
      ->type_name("JSON");
  submit->add_option("--input", flags.input, "raw input bytes");
  submit
      ->add_option("--input-file", flags.input_file,
                   "input bytes read from FILE (wins over --input)")
      ->type_name("FILE");
  submit->add_option("--pool", flags.pool, "pool (default: the function's)");
  submit->add_option("--priority", flags.priority,
                     "higher runs first (default 0)");
  AddDurationOption(submit, "--queue-timeout", flags.queue_timeout,
                    "longest wait before the task starts");
  AddDurationOption(submit, "--run-timeout", flags.run_timeout, "longest run");
  submit->add_option("--max-attempts", flags.max_attempts,
                     "runs allowed when a worker dies");
  submit->add_option("--label", flags.labels, "a label; repeat for more")
      ->check(LabelValidator())
      ->type_name("K=V")
      ->allow_extra_args(false);
  AddDurationOption(submit, "--ttl", flags.ttl,
                    "how long the server keeps the finished task");
  CLI::Option* wait = submit->add_flag(
      "--wait", flags.wait,
      "print the task id on stderr, wait until the task ends, print it");
  AddDurationOption(submit, "--timeout", flags.timeout,
                    "with --wait: stop waiting after DUR (exit 4)")
      ->needs(wait);

  CLI::App* await = AddIdsCommand(
      app, flags, "await",
      "Waits until the tasks end, or --timeout passes, and prints them");
  AddDurationOption(await, "--timeout", flags.timeout,
                    "longest wait, for all the tasks together (then exit 4)");
  AddIdsCommand(app, flags, "get", "Prints the tasks");
  AddIdsCommand(
      app, flags, "cancel",
      "Cancels the tasks and prints them (a finished task stays as it is)");
  AddIdsCommand(app, flags, "delete",
                "Forgets the tasks (cancels them first if they run) and "
                "prints {\"deleted\": [ids]}");

  CLI::App* list = app.add_subcommand(
      "list", "Lists tasks, oldest first, as {\"tasks\": [...]}");
  AddFilterFlags(list, flags);
  list->add_option("--page-size", flags.page_size,
                   "tasks per page (default 100, at most 1000)");
  list->add_option("--page-token", flags.page_token,
                   "the page after the one that printed this nextPageToken");
  list->add_flag("--all", flags.all, "every page, not only the first");

  app.add_subcommand("functions",
                     "Lists the functions and pools of the server");

  CLI::App* watch = app.add_subcommand(
      "watch",
      "Follows tasks, by id or by filter, until they end: a live table on "
      "a terminal,\none JSON task per line per change otherwise");
  watch->add_option("ID", flags.ids,
                    "task ids ('-': from stdin); none: the tasks that the "
                    "filters list, until interrupted or --timeout");
  AddFilterFlags(watch, flags);
  AddDurationOption(watch, "--interval", flags.interval,
                    "how often to ask the server (default 1s)");
  AddDurationOption(watch, "--timeout", flags.timeout, "stop after DUR");

  CLI::App* completion = app.add_subcommand(
      "completion",
      "Prints a shell completion script: source <(remex completion bash)");
  completion->add_option("SHELL", flags.shell, "bash")
      ->required()
      ->check(CLI::IsMember({"bash"}));

  CLI::App* help = app.add_subcommand("help", "Prints this help");
  help->add_option("COMMAND", flags.help_command, "a command's help");

  for (CLI::App* command : app.get_subcommands({})) command->group("Commands");
}

absl::StatusOr<ClientOptions> ConnectionOptions(const Flags& flags) {
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  ClientOptions options;
  options.tls = flags.tls || !flags.tls_ca.empty() || !flags.tls_cert.empty();
  for (const auto& [path, pem] :
       {std::pair(&flags.tls_ca, &options.tls_root_certs),
        std::pair(&flags.tls_cert, &options.tls_cert_chain),
        std::pair(&flags.tls_key, &options.tls_private_key)}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadFile(*path);
    if (!text.ok()) return text.status();
    *pem = *std::move(text);
  }
  options.token = flags.token;
  return options;
}

absl::StatusOr<SubmitCommand> MakeSubmit(const Flags& flags) {
  SubmitCommand command;
  command.function = flags.function;
  if (!flags.args.empty()) command.args = *ParseJson(flags.args);
  SubmitOptions& options = command.options;
  options.pool = flags.pool;
  options.priority = flags.priority;
  options.queue_timeout = ToDuration(flags.queue_timeout);
  options.run_timeout = ToDuration(flags.run_timeout);
  options.max_attempts = flags.max_attempts;
  for (const std::string& label : flags.labels) {
    const size_t equals = label.find('=');
    options.labels[label.substr(0, equals)] = label.substr(equals + 1);
  }
  options.ttl = ToDuration(flags.ttl);
  options.input = flags.input;
  if (!flags.input_file.empty()) {
    absl::StatusOr<std::string> input = ReadFile(flags.input_file);
    if (!input.ok()) return input.status();
    options.input = *std::move(input);
  }
  command.wait = flags.wait;
  command.timeout = ToDuration(flags.timeout, absl::InfiniteDuration());
  return command;
}

v1::ListRequest Filters(const Flags& flags) {
  v1::ListRequest request;
  v1::State state = v1::STATE_UNSPECIFIED;
  if (!flags.state.empty()) (void)v1::State_Parse(flags.state, &state);
  request.set_state(state);
  request.set_function(flags.function);
  request.set_pool(flags.pool);
  return request;
}

// Runs the command that `app` parsed into `flags`.
int RunCommand(CLI::App& app, const Flags& flags) {
  const CLI::App& command = *app.get_subcommands().front();
  const std::string& name = command.get_name();
  if (name == "help") {
    // Not app.help(): that would be the help of the command "help".
    if (flags.help_command.empty()) {
      std::cout << app.get_formatter()->make_help(&app, "remex",
                                                  CLI::AppFormatMode::Normal);
      return kExitOk;
    }
    const CLI::App* target = nullptr;
    try {
      target = app.get_subcommand(flags.help_command);
    } catch (const CLI::OptionNotFound&) {
      return UsageError(
          absl::StrCat("unknown command '", flags.help_command, "'"));
    }
    std::cout << target->get_formatter()->make_help(
        target, absl::StrCat("remex ", target->get_name()),
        CLI::AppFormatMode::Normal);
    return kExitOk;
  }
  if (name == "completion") {
    std::map<std::string, std::string> values = {
        {"-o", "json table id"},   {"--output", "json table id"},
        {"--state", StateNames()}, {"--input-file", "@file"},
        {"--tls-ca", "@file"},     {"--tls-cert", "@file"},
        {"--tls-key", "@file"},    {"--function", "@functions"},
    };
    std::cout << BashCompletion(app, values);
    return kExitOk;
  }

  const OutputFormat format = OutputFormatFromName(flags.output);
  const absl::StatusOr<std::vector<std::string>> ids =
      ExpandIds(flags.ids, std::cin);
  if (!ids.ok()) return UsageError(ids.status().message());
  const bool list = PrintsList(flags.ids);
  std::optional<SubmitCommand> submit;
  if (name == "submit") {
    absl::StatusOr<SubmitCommand> made = MakeSubmit(flags);
    if (!made.ok()) return UsageError(made.status().message());
    submit = *std::move(made);
  }
  if (name == "watch" && !flags.ids.empty() &&
      (!flags.state.empty() || !flags.function.empty() ||
       !flags.pool.empty())) {
    return UsageError("watch takes ids or filters, not both");
  }
  absl::StatusOr<ClientOptions> options = ConnectionOptions(flags);
  if (!options.ok()) return UsageError(options.status().message());

  Client client(flags.server, *std::move(options));
  if (name == "submit") return RunSubmit(client, *submit, format);
  if (name == "get") return RunGet(client, *ids, list, format);
  if (name == "cancel") return RunCancel(client, *ids, list, format);
  if (name == "delete") return RunDelete(client, *ids, list, format);
  if (name == "await") {
    return RunAwait(client, *ids, list,
                    ToDuration(flags.timeout, absl::InfiniteDuration()),
                    format);
  }
  if (name == "list") {
    ListCommand list_command;
    list_command.request = Filters(flags);
    list_command.request.set_page_size(flags.page_size);
    list_command.request.set_page_token(flags.page_token);
    list_command.all = flags.all;
    return RunList(client, list_command, format);
  }
  if (name == "functions") return RunFunctions(client, format);
  // watch
  WatchCommand watch;
  watch.ids = *ids;
  if (ids->empty() && !flags.ids.empty()) return kExitOk;  // empty stdin
  watch.filters = Filters(flags);
  watch.interval = std::max(ToDuration(flags.interval), absl::Milliseconds(10));
  watch.timeout = ToDuration(flags.timeout, absl::InfiniteDuration());
  WatchDisplay display =
      isatty(STDOUT_FILENO) ? WatchDisplay::kLive : WatchDisplay::kJsonLines;
  if (app.get_option("--output")->count() > 0) {
    display = format == OutputFormat::kTable ? WatchDisplay::kLive
              : format == OutputFormat::kId  ? WatchDisplay::kIds
                                             : WatchDisplay::kJsonLines;
  }
  return RunWatch(client, watch, display);
}

int Run(int argc, char** argv) {
  CLI::App app("", "remex");
  Flags flags;
  Define(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion& version) {
    std::cout << version.what() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& error) {
    absl::string_view message = error.what();
    absl::ConsumePrefix(&message, "remex: ");
    if (message == "A subcommand is required") {
      message = "missing command (see the list in remex --help)";
    }
    return UsageError(message);
  }
  return RunCommand(app, flags);
}

}  // namespace
}  // namespace remex::cli

int main(int argc, char** argv) { return remex::cli::Run(argc, argv); }
