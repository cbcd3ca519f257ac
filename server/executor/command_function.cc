#include "server/executor/command_function.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace remex::executor {
namespace {

constexpr char kDefaultPath[] = "PATH=/usr/local/bin:/usr/bin:/bin";
// How often a running command checks its cancellation token.
constexpr absl::Duration kCancelPollInterval = absl::Milliseconds(50);
// The stderr tail quoted in the error of a failed command.
constexpr size_t kStderrTailBytes = 1024;
constexpr size_t kReadChunk = 64 * 1024;

// ---------------------------------------------------------------------------
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
      const std::string& function, const std::vector<std::string>& command) {
    CommandTemplate parsed;
    parsed.function_ = function;
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
                       ", got ", args.dump()));
    }
    if (args.is_object()) {
      for (const auto& [key, value] : args.items()) {
        if (!names_.contains(key)) {
          return absl::InvalidArgumentError(absl::StrCat(
              function_, ": unknown arg '", key, "' (", TakesWhat(), ")"));
        }
      }
    }
    std::vector<std::string> argv;
    argv.reserve(elements_.size());
    for (const ElementTemplate& element : elements_) {
      std::string text;
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
        text += value;
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
  std::vector<ElementTemplate> elements_;
  std::set<std::string> names_;
};

// ---------------------------------------------------------------------------
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

std::vector<std::string> Environment(const CommandFunctionConfig& config) {
  std::vector<std::string> env;
  if (!config.env.contains("PATH")) env.push_back(kDefaultPath);
  for (const auto& [name, value] : config.env) {
    env.push_back(absl::StrCat(name, "=", value));
  }
  return env;
}

// ---------------------------------------------------------------------------
// Running the command.

// Closes the fd it holds, once.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.Release()) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset(other.Release());
    return *this;
  }
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  // Gives up the fd without closing it.
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

absl::Status ErrnoError(absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": ", strerror(errno)));
}

// A pipe whose ends are close-on-exec; the child's end is dup2'ed to 0, 1
// or 2 (which clears the flag on the copy).
absl::Status MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  return absl::OkStatus();
}

void SetNonBlocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Blocks SIGPIPE in this thread while it writes to the child's stdin, so
// that a child that exits without reading its input does not kill the
// server; a SIGPIPE raised meanwhile is consumed before the mask is
// restored.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe_, &previous_);
  }
  ~ScopedSigpipeBlock() {
    const timespec zero = {0, 0};
    while (sigtimedwait(&sigpipe_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }

 private:
  sigset_t sigpipe_;
  sigset_t previous_;
};

// posix_spawn's file actions and attributes, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& s : strings) {
    pointers.push_back(const_cast<char*>(s.c_str()));
  }
  pointers.push_back(nullptr);
  return pointers;
}

// The child's end of its three pipes, and ours.
struct ChildPipes {
  Fd stdin_read, stdin_write;
  Fd stdout_read, stdout_write;
  Fd stderr_read, stderr_write;
};

absl::StatusOr<pid_t> Spawn(const CommandRun& run, ChildPipes& pipes) {
  SpawnSetup setup;
  posix_spawn_file_actions_adddup2(&setup.actions, pipes.stdin_read.get(), 0);
  posix_spawn_file_actions_adddup2(&setup.actions, pipes.stdout_write.get(), 1);
  posix_spawn_file_actions_adddup2(&setup.actions, pipes.stderr_write.get(), 2);
  // Whatever the server opened without close-on-exec stays with the server.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);
  if (!run.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&setup.actions,
                                         run.working_dir.c_str());
  }
  // Its own process group, so that a cancel reaches everything it started;
  // no signal blocked (the server blocks SIGTERM in every thread) or
  // ignored.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETPGROUP |
                                            POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);

  std::vector<char*> argv = CStrings(run.argv);
  std::vector<char*> envp = CStrings(run.env);
  pid_t pid = -1;
  if (const int error = posix_spawn(&pid, argv[0], &setup.actions, &setup.attr,
                                    argv.data(), envp.data());
      error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", run.argv[0], ": ", strerror(error)));
  }
  return pid;
}

// One captured stream, bounded.
struct Capture {
  Fd fd;
  std::string* data;
  bool* truncated;
  size_t limit;

  // Reads what is there now; closes the fd at EOF.
  void ReadAvailable() {
    char buffer[kReadChunk];
    while (fd.open()) {
      const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
      if (n > 0) {
        const size_t room = limit - std::min(limit, data->size());
        data->append(buffer, std::min(room, static_cast<size_t>(n)));
        if (static_cast<size_t>(n) > room) *truncated = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      fd.Close();  // EOF or an error
    }
  }
};

// Writes the input to the child's stdin as the pipe takes it.
struct Feeder {
  Fd fd;
  const std::string* data;
  size_t written = 0;

  void WriteAvailable() {
    while (fd.open() && written < data->size()) {
      const ssize_t n =
          write(fd.get(), data->data() + written, data->size() - written);
      if (n > 0) {
        written += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        return;
      } else {
        fd.Close();  // EPIPE: the child stopped reading; not an error
      }
    }
    fd.Close();  // all written: EOF for the child
  }
};

// An fd that polls readable once `pid` exits, or -1. (Debian 12's
// <sys/pidfd.h> lacks extern "C", so the system call is made directly.)
int PidFdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// Drives a spawned child to its end: feeds stdin, captures stdout and
// stderr, stops it when cancelled, and reaps it.
//
// Not thread-safe; used by the one thread that spawned the child.
class ChildRun {
 public:
  ChildRun(pid_t pid, const CommandRun& run, ChildPipes& pipes,
           CommandResult& result, const CancellationToken& cancellation)
      : pid_(pid),
        run_(run),
        result_(result),
        cancellation_(cancellation),
        feeder_{.fd = std::move(pipes.stdin_write), .data = &run.stdin_data},
        stdout_{.fd = std::move(pipes.stdout_read),
                .data = &result.stdout_data,
                .truncated = &result.stdout_truncated,
                .limit = static_cast<size_t>(run.max_output_bytes)},
        stderr_{.fd = std::move(pipes.stderr_read),
                .data = &result.stderr_data,
                .truncated = &result.stderr_truncated,
                .limit = static_cast<size_t>(run.max_output_bytes)},
        // Readable once the child exits, so that the exit wakes the poll.
        // Without it (kernels before 5.3) the poll ticks instead.
        exit_fd_(PidFdOpen(pid)) {
    for (const Fd* fd : {&feeder_.fd, &stdout_.fd, &stderr_.fd}) {
      SetNonBlocking(fd->get());
    }
  }

  // Returns once the child is reaped.
  void Run() {
    ScopedSigpipeBlock no_sigpipe;
    feeder_.WriteAvailable();
    while (!Exited()) {
      StopIfCancelled();
      Poll();
      feeder_.WriteAvailable();
      stdout_.ReadAvailable();
      stderr_.ReadAvailable();
    }
    // The child is a zombie: its pid, and so its process group id, cannot
    // be reused yet. Whatever it left behind in the group goes with it.
    kill(-pid_, SIGKILL);
    Reap();
    feeder_.fd.Close();
    // What it wrote before it exited is in the pipes; a descendant that
    // escaped the group and holds them open is not waited for.
    stdout_.ReadAvailable();
    stderr_.ReadAvailable();
  }

 private:
  // True once the child has exited; it is not reaped yet (WNOWAIT). Also
  // true if it is gone (ECHILD: something else reaped it), so that the run
  // never waits for an exit that cannot be seen.
  bool Exited() {
    siginfo_t info = {};
    if (waitid(P_PID, static_cast<id_t>(pid_), &info,
               WEXITED | WNOHANG | WNOWAIT) != 0) {
      return errno == ECHILD;
    }
    return info.si_pid == pid_;
  }

  void StopIfCancelled() {
    if (!cancellation_.cancelled()) return;
    const absl::Time now = absl::Now();
    if (!result_.cancelled) {
      result_.cancelled = true;
      kill(-pid_, SIGTERM);
      kill_at_ = now + run_.cancel_grace;
    }
    if (!killed_ && now >= kill_at_) {
      killed_ = true;
      kill(-pid_, SIGKILL);
    }
  }

  // Waits for a pipe to be ready, at most kCancelPollInterval.
  void Poll() {
    std::array<pollfd, 4> fds;
    nfds_t count = 0;
    if (exit_fd_.open()) fds[count++] = {exit_fd_.get(), POLLIN, 0};
    if (feeder_.fd.open()) fds[count++] = {feeder_.fd.get(), POLLOUT, 0};
    if (stdout_.fd.open()) fds[count++] = {stdout_.fd.get(), POLLIN, 0};
    if (stderr_.fd.open()) fds[count++] = {stderr_.fd.get(), POLLIN, 0};
    absl::Duration wait = kCancelPollInterval;
    if (result_.cancelled && !killed_) {
      wait = std::min(wait,
                      std::max(absl::ZeroDuration(), kill_at_ - absl::Now()));
    }
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(wait));
    if (count == 0) {
      poll(nullptr, 0, ms);
    } else {
      poll(fds.data(), count, ms);
    }
  }

  void Reap() {
    int status = 0;
    pid_t reaped = -1;
    do {
      reaped = waitpid(pid_, &status, 0);
    } while (reaped < 0 && errno == EINTR);
    if (reaped != pid_) {
      result_.exit_code = -1;  // how it ended is lost
    } else if (WIFEXITED(status)) {
      result_.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      result_.signal = WTERMSIG(status);
    }
  }

  const pid_t pid_;
  const CommandRun& run_;
  CommandResult& result_;
  const CancellationToken& cancellation_;
  Feeder feeder_;
  Capture stdout_;
  Capture stderr_;
  Fd exit_fd_;
  absl::Time kill_at_ = absl::InfiniteFuture();
  bool killed_ = false;
};

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

absl::StatusOr<CommandResult> RunCommand(
    const CommandRun& run, const CancellationToken& cancellation) {
  if (run.argv.empty()) {
    return absl::InvalidArgumentError("RunCommand: empty argv");
  }
  ChildPipes pipes;
  REMEX_RETURN_IF_ERROR(MakePipe(pipes.stdin_read, pipes.stdin_write));
  REMEX_RETURN_IF_ERROR(MakePipe(pipes.stdout_read, pipes.stdout_write));
  REMEX_RETURN_IF_ERROR(MakePipe(pipes.stderr_read, pipes.stderr_write));
  REMEX_ASSIGN_OR_RETURN(const pid_t pid, Spawn(run, pipes));
  // The child holds its ends now; ours must close, or no EOF ever comes.
  pipes.stdin_read.Close();
  pipes.stdout_write.Close();
  pipes.stderr_write.Close();
  CommandResult result;
  ChildRun(pid, run, pipes, result, cancellation).Run();
  return result;
}

absl::StatusOr<FunctionSpec> MakeCommandFunction(
    const CommandFunctionConfig& config) {
  if (config.name.empty()) {
    return absl::InvalidArgumentError("a command function needs a name");
  }
  absl::StatusOr<CommandTemplate> parsed =
      CommandTemplate::Parse(config.name, config.command);
  if (!parsed.ok()) return Invalid(config.name, parsed.status().message());
  REMEX_RETURN_IF_ERROR(CheckConfig(config));

  auto command = std::make_shared<const CommandTemplate>(*std::move(parsed));
  CommandRun run_template = {.env = Environment(config),
                             .working_dir = config.working_dir,
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

}  // namespace remex::executor
