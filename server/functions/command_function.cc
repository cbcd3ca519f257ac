#include "server/functions/command_function.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "server/process/command_runner.h"

namespace remex::functions {

using ::remex::executor::FunctionSpec;
using ::remex::executor::Json;
using ::remex::executor::TaskContext;
using ::remex::process::CommandResult;
using ::remex::process::CommandRun;
using ::remex::process::Credentials;
using ::remex::process::RunCommand;

namespace {

constexpr char kDefaultPath[] = "PATH=/usr/local/bin:/usr/bin:/bin";
// The stderr tail quoted in the error of a failed command.
constexpr size_t kStderrTailBytes = 1024;

// The argv template.

// A piece of one argv element: literal text or a placeholder's arg name.
struct Segment {
  bool placeholder = false;
  std::string text;
};
using ElementTemplate = std::vector<Segment>;

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

absl::StatusOr<ElementTemplate> ParseElement(absl::string_view element) {
  ElementTemplate segments;
  std::string literal;
  for (size_t i = 0; i < element.size(); ++i) {
    const char c = element[i];
    const bool doubled = i + 1 < element.size() && element[i + 1] == c;
    if ((c == '{' || c == '}') && doubled) {
      literal += c;
      ++i;
      continue;
    }
    if (c == '}') {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", element, "': a lone '}' (write '}}' for a literal brace)"));
    }
    if (c != '{') {
      literal += c;
      continue;
    }
    const size_t close = element.find('}', i + 1);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", element, "': '{' without '}' (write '{{' for a literal brace)"));
    }
    const absl::string_view name = element.substr(i + 1, close - i - 1);
    if (name.empty() || absl::ascii_isdigit(name[0]) ||
        !std::all_of(name.begin(), name.end(), IsNameChar)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", element, "': bad placeholder '{", name,
                       "}' (letters, digits and '_', not starting with a "
                       "digit)"));
    }
    if (!literal.empty()) segments.push_back({false, std::move(literal)});
    literal.clear();
    segments.push_back({true, std::string(name)});
    i = close;
  }
  if (!literal.empty()) segments.push_back({false, std::move(literal)});
  return segments;
}

// An arg's value as argv text, or INVALID_ARGUMENT.
absl::StatusOr<std::string> ArgText(const std::string& function,
                                    const std::string& name,
                                    const Json& value) {
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (text.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(function, ": args.", name, " holds a NUL character"));
    }
    return text;
  }
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_integer()) return value.dump();
  if (value.is_number_float() && std::isfinite(value.get<double>())) {
    return value.dump();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(function, ": args.", name,
                   " must be a string, number or boolean, got ", value.dump()));
}

// The parsed command of one function.
//
// Immutable after Parse; shared by the function's args check and body on
// any thread.
class CommandTemplate {
 public:
  static absl::StatusOr<CommandTemplate> Parse(
      const std::string& function, const std::vector<std::string>& command,
      bool allow_option_values) {
    CommandTemplate parsed;
    parsed.function_ = function;
    parsed.allow_option_values_ = allow_option_values;
    for (size_t i = 0; i < command.size(); ++i) {
      absl::StatusOr<ElementTemplate> element = ParseElement(command[i]);
      if (!element.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("command[", i, "]: ", element.status().message()));
      }
      for (const Segment& segment : *element) {
        if (segment.placeholder) parsed.names_.insert(segment.text);
      }
      parsed.elements_.push_back(*std::move(element));
    }
    return parsed;
  }

  // The argv for `args`, or INVALID_ARGUMENT naming the arg that is wrong.
  absl::StatusOr<std::vector<std::string>> Fill(const Json& args) const {
    if (!args.is_null() && !args.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(function_, ": args must be a JSON object ", TakesWhat(),
                       ", got ", common::Quote(args.dump())));
    }
    if (args.is_object()) {
      for (const auto& [key, value] : args.items()) {
        if (!names_.contains(key)) {
          return absl::InvalidArgumentError(
              absl::StrCat(function_, ": unknown arg ", common::Quote(key),
                           " (", TakesWhat(), ")"));
        }
      }
    }
    std::vector<std::string> argv;
    argv.reserve(elements_.size());
    for (size_t i = 0; i < elements_.size(); ++i) {
      const ElementTemplate& element = elements_[i];
      std::string text;
      // The placeholder whose value gives the element its first character,
      // if the element starts with placeholders (else the first of them).
      const Segment* leading = nullptr;
      std::string leading_value;
      for (const Segment& segment : element) {
        if (!segment.placeholder) {
          text += segment.text;
          continue;
        }
        if (!args.is_object() || !args.contains(segment.text)) {
          return absl::InvalidArgumentError(
              absl::StrCat(function_, ": args.", segment.text, " is required (",
                           TakesWhat(), ")"));
        }
        REMEX_ASSIGN_OR_RETURN(
            const std::string value,
            ArgText(function_, segment.text, args[segment.text]));
        if (text.empty() && (leading == nullptr || !value.empty())) {
          leading = &segment;
          leading_value = value;
        }
        text += value;
      }
      // An element that the config starts with a literal is the config's
      // to make an option or not; one that a value starts is the client's.
      if (!allow_option_values_ && !element.empty() &&
          element.front().placeholder && absl::StartsWith(text, "-")) {
        return absl::InvalidArgumentError(absl::StrCat(
            function_, ": args.", leading->text, " = ",
            common::Quote(leading_value), " would start argv element ", i,
            " with '-', an option of the command (a negative number too); "
            "the function's config may allow it with allow_option_values: "
            "true"));
      }
      argv.push_back(std::move(text));
    }
    return argv;
  }

  const std::set<std::string>& names() const { return names_; }

 private:
  std::string TakesWhat() const {
    if (names_.empty()) return "the command takes no args";
    return absl::StrCat("the command takes ", absl::StrJoin(names_, ", "));
  }

  std::string function_;
  bool allow_option_values_ = false;
  std::vector<ElementTemplate> elements_;
  std::set<std::string> names_;
};

// Checking the config.

absl::Status Invalid(const std::string& function, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("function '", function, "': ", what));
}

absl::Status CheckExecutable(const CommandFunctionConfig& config) {
  const std::string& path = config.command[0];
  if (path.empty() || path[0] != '/' || path.find('{') != std::string::npos ||
      path.find('}') != std::string::npos) {
    return Invalid(config.name,
                   absl::StrCat("command[0] must be the absolute path of the "
                                "executable, without placeholders, got '",
                                path, "'"));
  }
  struct stat info;
  if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return Invalid(config.name,
                   absl::StrCat("command[0]: no such file '", path, "'"));
  }
  if (access(path.c_str(), X_OK) != 0) {
    return Invalid(config.name,
                   absl::StrCat("command[0]: '", path, "' is not executable"));
  }
  return absl::OkStatus();
}

absl::Status CheckConfig(const CommandFunctionConfig& config) {
  if (config.command.empty()) {
    return Invalid(config.name, "command must name at least the executable");
  }
  REMEX_RETURN_IF_ERROR(CheckExecutable(config));
  for (const auto& [name, value] : config.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return Invalid(config.name,
                     absl::StrCat("env: bad variable '", name, "'"));
    }
  }
  if (!config.working_dir.empty()) {
    struct stat info;
    if (config.working_dir[0] != '/' ||
        stat(config.working_dir.c_str(), &info) != 0 ||
        !S_ISDIR(info.st_mode)) {
      return Invalid(config.name,
                     absl::StrCat("working_dir must be an absolute path to a "
                                  "directory, got '",
                                  config.working_dir, "'"));
    }
  }
  if (config.max_output_bytes <= 0) {
    return Invalid(config.name, "max_output_bytes must be positive");
  }
  if (config.cancel_grace < absl::ZeroDuration()) {
    return Invalid(config.name, "cancel_grace must not be negative");
  }
  if (config.run_timeout <= absl::ZeroDuration()) {
    return Invalid(config.name, "run_timeout must be positive");
  }
  return absl::OkStatus();
}

// Ids: digits only.
std::optional<uint32_t> NumericId(const std::string& text) {
  uint32_t id = 0;
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isdigit(c);
      })) {
    return std::nullopt;
  }
  if (!absl::SimpleAtoi(text, &id) || id == static_cast<uint32_t>(-1)) {
    return std::nullopt;
  }
  return id;
}

// The passwd entry of `name` (by_name) or of uid `id`; nullopt if none.
std::optional<struct passwd> LookUpUser(const std::string& name, uid_t id,
                                        bool by_name,
                                        std::vector<char>& buffer) {
  buffer.resize(16 * 1024);
  for (;;) {
    struct passwd entry;
    struct passwd* found = nullptr;
    const int error =
        by_name ? getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(),
                             &found)
                : getpwuid_r(id, &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return std::nullopt;
    return entry;
  }
}

std::optional<gid_t> LookUpGroup(const std::string& name) {
  std::vector<char> buffer(16 * 1024);
  for (;;) {
    struct group entry;
    struct group* found = nullptr;
    const int error =
        getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return std::nullopt;
    return entry.gr_gid;
  }
}

// The account of `user` and `group`, resolved now (at config load), or
// nullopt when neither is set.
absl::StatusOr<std::optional<Credentials>> ResolveCredentials(
    const CommandFunctionConfig& config) {
  if (config.user.empty() && config.group.empty()) return std::nullopt;
  Credentials credentials = {.uid = geteuid(), .gid = getegid()};
  std::optional<gid_t> primary_gid;
  if (!config.user.empty()) {
    std::vector<char> buffer;
    const std::optional<uint32_t> uid = NumericId(config.user);
    const std::optional<struct passwd> entry =
        LookUpUser(config.user, uid.value_or(0), !uid.has_value(), buffer);
    if (!uid.has_value() && !entry.has_value()) {
      return Invalid(config.name,
                     absl::StrCat("user: no such user '", config.user, "'"));
    }
    credentials.uid = uid.has_value() ? *uid : entry->pw_uid;
    if (entry.has_value()) primary_gid = entry->pw_gid;
  }
  if (!config.group.empty()) {
    std::optional<gid_t> gid = NumericId(config.group);
    if (!gid.has_value()) gid = LookUpGroup(config.group);
    if (!gid.has_value()) {
      return Invalid(config.name,
                     absl::StrCat("group: no such group '", config.group, "'"));
    }
    credentials.gid = *gid;
  } else if (primary_gid.has_value()) {
    credentials.gid = *primary_gid;
  } else {
    return Invalid(config.name,
                   absl::StrCat("user ", config.user,
                                " has no passwd entry, so no primary group: "
                                "set group"));
  }
  // After the names, so that a typo is reported whoever checks the config.
  if (geteuid() != 0) {
    return Invalid(
        config.name,
        absl::StrCat("user/group: the server runs as uid ", geteuid(),
                     ", not root, so it cannot run commands as "
                     "another account; remove user and group or "
                     "start the server as root"));
  }
  if (access(process::kSetprivPath, X_OK) != 0) {
    return Invalid(config.name,
                   absl::StrCat("user/group need ", process::kSetprivPath,
                                " (util-linux), which is not there"));
  }
  return credentials;
}

bool IsDirectory(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

// Where each run's private working directory is made: the server's
// $TMPDIR if it is an absolute path, else /tmp.
std::string PrivateDirParent() {
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && tmpdir[0] == '/') return tmpdir;
  return "/tmp";
}

std::vector<std::string> Environment(const CommandFunctionConfig& config) {
  std::vector<std::string> env;
  if (!config.env.contains("PATH")) env.push_back(kDefaultPath);
  for (const auto& [name, value] : config.env) {
    env.push_back(absl::StrCat(name, "=", value));
  }
  return env;
}

// The last kStderrTailBytes of stderr, as valid UTF-8.
std::string StderrTail(const std::string& stderr_data) {
  absl::string_view tail = stderr_data;
  if (tail.size() > kStderrTailBytes) {
    tail = tail.substr(tail.size() - kStderrTailBytes);
  }
  return common::ToValidUtf8(absl::StripAsciiWhitespace(tail));
}

absl::Status FailureOf(const std::string& function,
                       const CommandResult& result) {
  const std::string how =
      result.signal != 0 ? absl::StrCat("was killed by signal ", result.signal,
                                        " (", strsignal(result.signal), ")")
                         : absl::StrCat("exited with code ", result.exit_code);
  const std::string tail = StderrTail(result.stderr_data);
  return absl::UnknownError(
      absl::StrCat(function, ": the command ", how,
                   tail.empty() ? "" : absl::StrCat("; stderr: ", tail)));
}

Json ResultJson(const CommandResult& result) {
  Json stdout_text;  // null when not valid UTF-8: see the output bytes
  if (common::IsValidUtf8(result.stdout_data)) {
    stdout_text = result.stdout_data;
  }
  return Json{{"exit_code", result.exit_code},
              {"stdout", std::move(stdout_text)},
              {"stderr", common::ToValidUtf8(result.stderr_data)},
              {"stdout_truncated", result.stdout_truncated},
              {"stderr_truncated", result.stderr_truncated}};
}

}  // namespace

absl::StatusOr<FunctionSpec> MakeCommandFunction(
    const CommandFunctionConfig& config) {
  if (config.name.empty()) {
    return absl::InvalidArgumentError("a command function needs a name");
  }
  absl::StatusOr<CommandTemplate> parsed = CommandTemplate::Parse(
      config.name, config.command, config.allow_option_values);
  if (!parsed.ok()) return Invalid(config.name, parsed.status().message());
  REMEX_RETURN_IF_ERROR(CheckConfig(config));
  REMEX_ASSIGN_OR_RETURN(const std::optional<Credentials> run_as,
                         ResolveCredentials(config));
  const std::string private_dir_parent =
      config.working_dir.empty() ? PrivateDirParent() : std::string();
  if (!private_dir_parent.empty() && !IsDirectory(private_dir_parent)) {
    return Invalid(config.name,
                   absl::StrCat("no working_dir, and ", private_dir_parent,
                                " ($TMPDIR or /tmp), where each run's own "
                                "directory would be made, is not a directory"));
  }

  auto command = std::make_shared<const CommandTemplate>(*std::move(parsed));
  CommandRun run_template = {.env = Environment(config),
                             .working_dir = config.working_dir,
                             .private_dir_in = private_dir_parent,
                             .run_as = run_as,
                             .max_output_bytes = config.max_output_bytes,
                             .cancel_grace = config.cancel_grace};
  std::string description = config.description;
  if (description.empty()) {
    description = absl::StrCat("runs ", absl::StrJoin(config.command, " "));
  }
  return FunctionSpec{
      .name = config.name,
      .description = std::move(description),
      .default_pool = config.pool,
      .run_timeout = config.run_timeout,
      .check_args =
          [command](const Json& args, const std::string&) {
            return command->Fill(args).status();
          },
      .body = [command, run_template,
               name = config.name](TaskContext& context) -> absl::Status {
        CommandRun run = run_template;
        REMEX_ASSIGN_OR_RETURN(run.argv, command->Fill(context.args()));
        run.stdin_data = context.input();
        REMEX_ASSIGN_OR_RETURN(const CommandResult result,
                               RunCommand(run, context.cancellation()));
        if (result.cancelled) {
          return absl::CancelledError("stopped: the task was cancelled");
        }
        if (result.signal != 0 || result.exit_code != 0) {
          return FailureOf(name, result);
        }
        context.set_result(ResultJson(result));
        context.set_output(result.stdout_data);
        return absl::OkStatus();
      }};
}

}  // namespace remex::functions
