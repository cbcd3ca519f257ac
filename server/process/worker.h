// The worker side of a process pool: what runs in each worker process.
//
// A worker is the server binary itself (or a custom server, or a test
// binary), started by posix_spawn with the parent's argv plus
// `--remex-worker=PARENT_PID` and its channel on fd kWorkerChannelFd, in a
// session of its own. Its main must call PrepareWorkerProcess() first,
// build the same function registry the server builds, and then RunWorker().
#ifndef REMEX_SERVER_PROCESS_WORKER_H_
#define REMEX_SERVER_PROCESS_WORKER_H_

#include <sys/types.h>

#include <optional>

#include "remex/worker/v1/worker.pb.h"
#include "server/executor/cancellation.h"
#include "server/executor/function_registry.h"

namespace remex::process {

// Where a worker finds its channel to the supervisor.
inline constexpr int kWorkerChannelFd = 3;
// The flag that starts a binary in worker mode; its value is the pid of the
// server that spawned it.
inline constexpr char kWorkerFlag[] = "--remex-worker";
// A worker exits with this code when an allocation fails (its memory limit).
inline constexpr int kOutOfMemoryExitCode = 86;

// If `argv` holds kWorkerFlag=PID, removes it (argc shrinks) and returns the
// PID; the rest of argv is the server's own flags.
std::optional<pid_t> TakeWorkerFlag(int& argc, char** argv);

// Makes this process a well-behaved child of `parent`: dies with it (and
// exits at once if it is already gone), closes every inherited fd but
// stdin, stdout, stderr and the channel. Call first thing in worker mode.
void PrepareWorkerProcess(pid_t parent);

// Serves the supervisor on `fd` until it closes the channel: applies the
// limits it sends, then runs one task at a time with `registry`'s
// functions, honouring cancel requests through the task's token. Returns
// the process exit code. REQUIRES: PrepareWorkerProcess() was called.
int RunWorker(int fd, const executor::FunctionRegistry& registry);

namespace internal {

// Runs one task the supervisor sent with `registry`'s functions on this
// thread and returns the answer to send back: the function's outcome, or
// INTERNAL for a function the registry lacks or args_json that does not
// parse. Whatever `run` holds, it does not crash the worker.
remex::worker::v1::FromWorker RunOne(const remex::worker::v1::Run& run,
                                     const executor::FunctionRegistry& registry,
                                     const executor::CancellationToken& token);

}  // namespace internal
}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_WORKER_H_
