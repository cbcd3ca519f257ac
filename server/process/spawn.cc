#include "server/process/spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/process/janitor.h"

extern char** environ;

namespace remex::process {
namespace {

constexpr const char* kKeptEnvironment[] = {
    "PATH=",         "HOME=",          "USER=",
    "LANG=",         "LC_ALL=",        "LC_CTYPE=",
    "TZ=",           "TMPDIR=",        "LD_LIBRARY_PATH=",
    "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS="};

// How often AwaitExit looks when it has no pidfd to poll.
constexpr absl::Duration kExitPollInterval = absl::Microseconds(200);

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

// Copies of source fds that an earlier dup2 of the file actions could
// overwrite (a source below fds.size() that is not its own target), moved
// above them; closed once the child is started.
class MovedFds {
 public:
  ~MovedFds() {
    for (int fd : fds_) close(fd);
  }
  // The fd to dup2 from for `source`, or -1 if it cannot be moved.
  int SafeSource(int source, int target, int count) {
    if (source >= count || source == target) return source;
    const int moved = fcntl(source, F_DUPFD_CLOEXEC, count);
    if (moved >= 0) fds_.push_back(moved);
    return moved;
  }

 private:
  std::vector<int> fds_;
};

// poll()'s timeout for `left` (infinite: -1), at most a minute.
int PollTimeoutMs(absl::Duration left) {
  if (left == absl::InfiniteDuration()) return -1;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
      60'000));
}

// "STATE PPID PGRP SESSION" after the last ')' of /proc/PID/stat (the
// command name may hold spaces and parentheses).
bool ReadStat(const char* pid, char& state, pid_t& session) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%s/stat", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[512];
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* end_of_comm = strrchr(text, ')');
  int ppid = 0, pgrp = 0, sid = 0;
  if (end_of_comm == nullptr || std::sscanf(end_of_comm + 1, " %c %d %d %d",
                                            &state, &ppid, &pgrp, &sid) != 4) {
    return false;
  }
  session = sid;
  return true;
}

// Signals the live members of `sid` not in `signalled` and adds them;
// returns how many it found.
int KillNewMembers(pid_t sid, std::set<pid_t>& signalled) {
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return 0;
  const pid_t self = getpid();
  int found = 0;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid == self) continue;
    char state = '?';
    pid_t session = 0;
    if (!ReadStat(entry->d_name, state, session) || session != sid ||
        state == 'Z' || state == 'X' ||
        !signalled.insert(static_cast<pid_t>(pid)).second) {
      continue;
    }
    kill(static_cast<pid_t>(pid), SIGKILL);
    ++found;
  }
  closedir(dir);
  return found;
}

// setpriv's argv to run `spec` as spec.run_as: ids first, then `--`, so
// that nothing of the command's argv is read as setpriv's option.
std::vector<std::string> SetprivArgv(const ChildSpec& spec) {
  const Credentials& as = *spec.run_as;
  std::vector<std::string> argv = {kSetprivPath,
                                   absl::StrCat("--regid=", as.gid),
                                   absl::StrCat("--groups=", as.gid),
                                   absl::StrCat("--reuid=", as.uid),
                                   "--no-new-privs",
                                   "--"};
  argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());
  return argv;
}

}  // namespace

std::vector<std::string> ScrubbedEnvironment() {
  std::vector<std::string> kept;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    for (const char* prefix : kKeptEnvironment) {
      if (absl::StartsWith(*entry, prefix)) kept.emplace_back(*entry);
    }
  }
  return kept;
}

absl::StatusOr<pid_t> SpawnChild(const ChildSpec& spec) {
  if (spec.run_as.has_value() &&
      (spec.argv.empty() || spec.argv[0] != spec.executable)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot start ", spec.executable,
                     " as another user: argv[0] must be the executable"));
  }
  SpawnSetup setup;
  MovedFds moved;
  const int count = static_cast<int>(spec.fds.size());
  for (int target = 0; target < count; ++target) {
    if (spec.fds[target] < 0) {
      posix_spawn_file_actions_addopen(&setup.actions, target, "/dev/null",
                                       O_RDWR, 0);
      continue;
    }
    const int source = moved.SafeSource(spec.fds[target], target, count);
    if (source < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot start ", spec.executable, ": fcntl: ", strerror(errno)));
    }
    // dup2 onto itself clears close-on-exec (glibc 2.29 and later).
    posix_spawn_file_actions_adddup2(&setup.actions, source, target);
  }
  // Whatever this process opened without close-on-exec stays here.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, count);
  if (!spec.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&setup.actions,
                                         spec.working_dir.c_str());
  }
  // No signal blocked (the server blocks SIGTERM in every thread) or
  // ignored.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  flags |= spec.group == ChildGroup::kNewGroup ? POSIX_SPAWN_SETPGROUP
                                               : POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&setup.attr, flags);
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);

  const std::vector<std::string> setpriv_argv =
      spec.run_as.has_value() ? SetprivArgv(spec) : std::vector<std::string>();
  const std::string& executable =
      spec.run_as.has_value() ? setpriv_argv[0] : spec.executable;
  std::vector<char*> argv =
      CStrings(spec.run_as.has_value() ? setpriv_argv : spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  pid_t pid = -1;
  if (const int error = posix_spawn(&pid, executable.c_str(), &setup.actions,
                                    &setup.attr, argv.data(), envp.data());
      error != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start ", spec.executable,
        spec.run_as.has_value() ? absl::StrCat(" through ", executable) : "",
        ": ", strerror(error)));
  }
  internal::TellJanitor(spec.group == ChildGroup::kNewGroup
                            ? internal::JanitorOp::kWatchGroup
                            : internal::JanitorOp::kWatchSession,
                        pid);
  return pid;
}

bool HasExited(pid_t pid) {
  siginfo_t info = {};
  if (waitid(P_PID, static_cast<id_t>(pid), &info,
             WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;
  }
  return info.si_pid == pid;
}

bool AwaitExit(pid_t pid, absl::Duration timeout) {
  if (HasExited(pid)) return true;
  const absl::Time deadline = absl::Now() + timeout;
  const int pidfd = OpenPidFd(pid);
  bool exited = false;
  while (!exited) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    if (pidfd >= 0) {
      pollfd ready = {pidfd, POLLIN, 0};
      poll(&ready, 1, PollTimeoutMs(left));
    } else {
      absl::SleepFor(std::min(left, kExitPollInterval));
    }
    exited = HasExited(pid);
  }
  if (pidfd >= 0) close(pidfd);
  return exited;
}

std::optional<int> Reap(pid_t pid) {
  AwaitExit(pid, absl::InfiniteDuration());
  // Its ids are still reserved: the janitor can no longer confuse them.
  internal::TellJanitor(internal::JanitorOp::kForget, pid);
  int status = 0;
  pid_t reaped = -1;
  do {
    reaped = waitpid(pid, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  if (reaped != pid) return std::nullopt;
  return status;
}

int OpenPidFd(pid_t pid) {
  // Debian 12's <sys/pidfd.h> lacks extern "C": the system call is made
  // directly.
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

void KillSession(pid_t sid) {
  std::set<pid_t> signalled;
  while (KillNewMembers(sid, signalled) > 0) {
  }
}

}  // namespace remex::process
