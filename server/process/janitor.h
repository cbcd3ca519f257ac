// The janitor: a small process that outlives the server by a moment to kill
// every child the server leaves behind when it dies, even by kill -9 (which
// runs no code of the server's). PR_SET_PDEATHSIG cannot be set on a
// posix_spawned child, fires when the spawning *thread* ends, and never
// reaches grandchildren; the janitor needs none of that.
//
// The server starts it once (StartJanitor), as its own binary in janitor
// mode, detached: not a child of the server (the server reaps the first
// stage at once) and in a session of its own, so it dies neither with the
// server nor of the server's terminal signals. It reads fixed-size records
// from a SOCK_SEQPACKET socket (each send is one atomic record) whose other
// end the server alone holds: watch process group G, watch session S,
// forget G or S. At the end of the stream (the server exited or died), it
// SIGKILLs every group and every member of every session still watched, and
// exits.
//
// SpawnChild (spawn.h) registers each child's group or session while this
// process is connected; Reap forgets it while its leader is an unreaped
// zombie, so that a watched id never names another process. Process
// workers neither connect nor hold the socket: the commands they run are in
// the worker's session, which the supervisor registered (and kills itself
// when it ends a worker); a worker still alive at the end of the stream
// (PR_SET_PDEATHSIG is on its way) is a member of its session and killed
// with it, and the next pass finds what it started meanwhile. (A worker
// holding the socket would let a process that one of its functions forked
// without exec keep the janitor waiting for ever.)
//
// Limits: a kill -9 that lands between posix_spawn's return and the
// registration (one send) leaves that one child; a descendant that leaves
// its group (commands) or session (workers) is not followed.
#ifndef REMEX_SERVER_PROCESS_JANITOR_H_
#define REMEX_SERVER_PROCESS_JANITOR_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace remex::process {

// The flag that starts the server binary in janitor mode; its value is the
// pid of the server it serves.
inline constexpr char kJanitorFlag[] = "--remex-janitor";

// Starts the janitor of this process (`executable`, named `argv0`), with
// ScrubbedEnvironment() (spawn.h), connects to it and returns once it runs
// and its /proc files are closed to other processes of its uid: from now
// on, every child SpawnChild starts is killed if this process dies before
// it reaps the child. Call once, before starting children; the binary must
// call RunJanitorIfAsked() first thing in main. FAILED_PRECONDITION if the
// janitor cannot be started or does not report running within 30 s.
absl::Status StartJanitor(const std::string& executable,
                          const std::string& argv0);

// In janitor mode (argv holds kJanitorFlag), runs the janitor and returns
// the process exit code; nullopt otherwise.
std::optional<int> RunJanitorIfAsked(int argc, char** argv);

namespace internal {

enum class JanitorOp : int32_t {
  kWatchGroup = 1,
  kWatchSession = 2,
  kForget = 3
};

// Sends one record to the janitor; a no-op without one (unit tests, workers).
// Thread-safe.
void TellJanitor(JanitorOp op, pid_t id);

}  // namespace internal
}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_JANITOR_H_
