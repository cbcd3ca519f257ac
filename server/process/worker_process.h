// The server's side of one worker process's life, apart from what is said
// on its channel: starting it (the server binary in worker mode, its channel
// at a fixed fd, a scrubbed environment), ending it
// (killed, what it left in its session killed, reaped) and telling why it
// died. Used by the supervisor (supervisor.h) alone.
#ifndef REMEX_SERVER_PROCESS_WORKER_PROCESS_H_
#define REMEX_SERVER_PROCESS_WORKER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/executor/pool.h"

namespace remex::process {

// How workers are started: `executable` with `argv` (argv[0] first) plus the
// worker flag; the binary must enter worker mode on it (see worker.h).
struct WorkerCommand {
  std::string executable = "/proc/self/exe";
  std::vector<std::string> argv;
  // How long the first workers get to report ready before Create fails.
  absl::Duration startup_timeout = absl::Seconds(30);
};

namespace internal {

// A started worker: its pid and the supervisor's end of its channel (owned
// by the caller).
struct WorkerChild {
  pid_t pid = -1;
  int channel = -1;
};

// Starts a worker of pool `pool`: `command` plus kWorkerFlag=<this pid>, in
// a session of its own (no Ctrl-C on the server's terminal reaches it; the
// server stops its workers itself), stdin /dev/null, stdout to the server's
// stderr (what functions print must not mix with the server's stdout), the
// channel at kWorkerChannelFd; its session is registered with the janitor.
// UNAVAILABLE naming the pool if it cannot be started.
absl::StatusOr<WorkerChild> StartWorker(
    const WorkerCommand& command, const std::vector<std::string>& environment,
    const std::string& pool);

// Ends worker `pid`: SIGKILLs it now (`kill_now`) or once it has not exited
// within a short grace, then kills whatever is left in its session (the
// commands it ran and their descendants), then reaps it. Returns its wait
// status (0 if something else reaped it).
int EndWorker(pid_t pid, bool kill_now);

// Why a worker that ended on its own did, from its wait status.
std::string DescribeDeath(int status, const executor::PoolConfig& config);

}  // namespace internal
}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_WORKER_PROCESS_H_
