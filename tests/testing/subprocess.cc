#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tests/testing/wait.h"

extern char** environ;

namespace remex::testing {
namespace {

absl::Status ErrnoError(absl::string_view what, int error) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(error)));
}

// A NULL-terminated array of pointers into `strings`.
std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// The current environment with `extra` ("NAME=VALUE") added; a name in
// `extra` replaces the variable of that name.
std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  auto name_of = [](absl::string_view var) {
    return var.substr(0, var.find('='));
  };
  std::vector<std::string> env;
  for (char** var = environ; *var != nullptr; ++var) {
    const absl::string_view name = name_of(*var);
    if (std::none_of(extra.begin(), extra.end(), [&](const std::string& e) {
          return name_of(e) == name;
        })) {
      env.emplace_back(*var);
    }
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

int ExitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// posix_spawn of argv[0] with `actions`, `attributes` (may be null) and
// the environment plus `extra_env`.
absl::StatusOr<pid_t> SpawnWith(posix_spawn_file_actions_t* actions,
                                const posix_spawnattr_t* attributes,
                                std::vector<std::string> argv,
                                const std::vector<std::string>& extra_env) {
  std::vector<std::string> env = Environment(extra_env);
  pid_t pid;
  const int error = posix_spawn(&pid, argv[0].c_str(), actions, attributes,
                                CStrings(argv).data(), CStrings(env).data());
  if (error != 0) return ErrnoError(absl::StrCat("spawn ", argv[0]), error);
  return pid;
}

}  // namespace

absl::StatusOr<SpawnedProcess> Spawn(
    const std::vector<std::string>& argv,
    const std::vector<std::string>& extra_env) {
  std::array<int, 2> out, err;
  if (pipe2(out.data(), O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  if (pipe2(err.data(), O_CLOEXEC) != 0) {
    const int error = errno;
    close(out[0]);
    close(out[1]);
    return ErrnoError("pipe", error);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  absl::StatusOr<pid_t> pid = SpawnWith(&actions, nullptr, argv, extra_env);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (!pid.ok()) {
    close(out[0]);
    close(err[0]);
    return pid.status();
  }
  return SpawnedProcess{*pid, out[0], err[0]};
}

absl::StatusOr<pid_t> SpawnInOwnGroup(const std::vector<std::string>& argv,
                                      const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  absl::StatusOr<pid_t> pid = SpawnWith(&actions, &attributes, argv, {});
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

absl::StatusOr<int> WaitForExit(pid_t pid, absl::Duration timeout) {
  int status = 0;
  std::optional<absl::StatusOr<int>> ended;  // Set once waitpid answers.
  if (WaitUntil(
          [&] {
            const pid_t reaped = waitpid(pid, &status, WNOHANG);
            if (reaped == pid) {
              ended = ExitCode(status);
            } else if (reaped < 0 && errno != EINTR) {
              ended = ErrnoError("waitpid", errno);
            }
            return ended.has_value();
          },
          timeout)) {
    return *std::move(ended);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return absl::DeadlineExceededError(
      absl::StrCat("process ", pid, " did not exit within ",
                   absl::FormatDuration(timeout), "; killed"));
}

void PumpPipes(const std::vector<int>& fds,
               const std::function<void(size_t, const char*, size_t)>& sink,
               const std::function<bool()>& stop) {
  std::vector<pollfd> polls;
  for (int fd : fds) polls.push_back({fd, POLLIN, 0});
  size_t open = polls.size();
  char buffer[4096];
  while (open > 0 && !stop()) {
    if (poll(polls.data(), polls.size(), /*timeout_ms=*/50) <= 0) continue;
    for (size_t i = 0; i < polls.size(); ++i) {
      if (polls[i].fd < 0 || polls[i].revents == 0) continue;
      const ssize_t n = read(polls[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sink(i, buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        polls[i].fd = -1;  // poll() ignores negative fds.
        --open;
      }
    }
  }
}

absl::StatusOr<ProcessResult> RunProcess(
    const std::vector<std::string>& argv, absl::Duration timeout,
    const std::vector<std::string>& extra_env) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<SpawnedProcess> process = Spawn(argv, extra_env);
  if (!process.ok()) return process.status();
  ProcessResult result;
  PumpPipes(
      {process->stdout_fd, process->stderr_fd},
      [&result](size_t index, const char* data, size_t size) {
        (index == 0 ? result.out : result.err).append(data, size);
      },
      [deadline] { return absl::Now() >= deadline; });
  close(process->stdout_fd);
  close(process->stderr_fd);
  absl::StatusOr<int> exit_code = WaitForExit(
      process->pid, std::max(deadline - absl::Now(), absl::ZeroDuration()));
  if (!exit_code.ok()) return exit_code.status();
  result.exit_code = *exit_code;
  return result;
}

}  // namespace remex::testing
