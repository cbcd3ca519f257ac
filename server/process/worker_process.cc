#include "server/process/worker_process.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "server/process/spawn.h"
#include "server/process/worker.h"

namespace remex::process::internal {
namespace {

// What workers inherit of the server's environment.
// How long a worker whose channel closed gets to finish exiting before it is
// killed (it normally takes microseconds; a worker whose function closed the
// channel's fd would otherwise never be reaped).
constexpr absl::Duration kExitGrace = absl::Seconds(1);

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  const char* description = sigdescr_np(signal);
  return absl::StrCat(abbrev != nullptr ? absl::StrCat("SIG", abbrev)
                                        : absl::StrCat("signal ", signal),
                      description != nullptr
                          ? absl::StrCat(" (", description, ")")
                          : std::string());
}

}  // namespace

absl::StatusOr<WorkerChild> StartWorker(
    const WorkerCommand& command, const std::vector<std::string>& environment,
    const std::string& pool) {
  int channel[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
    return absl::UnavailableError(
        absl::StrCat("socketpair: ", strerror(errno)));
  }
  ChildSpec spec = {.executable = command.executable,
                    .argv = command.argv,
                    .env = environment,
                    .fds = {-1, STDERR_FILENO, STDERR_FILENO, channel[1]},
                    .group = ChildGroup::kNewSession};
  static_assert(kWorkerChannelFd == 3);
  if (spec.argv.empty()) spec.argv.push_back(command.executable);
  spec.argv.push_back(absl::StrCat(kWorkerFlag, "=", getpid()));
  absl::StatusOr<pid_t> pid = SpawnChild(spec);
  close(channel[1]);
  if (!pid.ok()) {
    close(channel[0]);
    return absl::UnavailableError(
        absl::StrCat("pool '", pool, "': worker ", pid.status().message()));
  }
  return WorkerChild{.pid = *pid, .channel = channel[0]};
}

int EndWorker(pid_t pid, bool kill_now) {
  // Killing a zombie is harmless.
  if (kill_now || !AwaitExit(pid, kExitGrace)) kill(pid, SIGKILL);
  AwaitExit(pid, absl::InfiniteDuration());
  // An unreaped zombie, it still holds its session id.
  KillSession(pid);
  return Reap(pid).value_or(0);
}

std::string DescribeDeath(int status, const executor::PoolConfig& config) {
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == kOutOfMemoryExitCode) {
      return config.memory_limit_bytes > 0
                 ? absl::StrCat("worker ran out of memory (memory_limit_bytes ",
                                config.memory_limit_bytes, ")")
                 : "worker ran out of memory";
    }
    return absl::StrCat("worker exited with code ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    if (signal == SIGXCPU && config.cpu_limit_seconds > 0) {
      return absl::StrCat("worker exceeded its CPU limit (cpu_limit_seconds ",
                          config.cpu_limit_seconds, "): killed by ",
                          SignalName(signal));
    }
    return absl::StrCat("worker killed by signal ", SignalName(signal));
  }
  return absl::StrCat("worker ended with wait status ", status);
}

}  // namespace remex::process::internal
