// Starting and reaping children: the one place in the project that calls
// posix_spawn and waitpid (process workers, command children and the
// janitor all start here), and the one that tells the janitor (janitor.h)
// which children to kill if the server dies. Plain POSIX.
#ifndef REMEX_SERVER_PROCESS_SPAWN_H_
#define REMEX_SERVER_PROCESS_SPAWN_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace remex::process {

// The account a child runs as, instead of this process's.
struct Credentials {
  uid_t uid = 0;
  // The primary group and the one supplementary group.
  gid_t gid = 0;
};

// The program that drops a child's privileges before its exec (util-linux,
// essential in Debian, so also in the runtime image): posix_spawn cannot
// change credentials, and fork() of a multi-threaded server to call
// setuid() is out. setpriv sets the groups, then the ids, then execs in
// place, so the command keeps the pid, group and janitor registration that
// SpawnChild gave setpriv. Preferred to an exec-shim mode of the server's
// own binary: every process that runs commands could use it (process
// workers, custom servers on RunServer, unit tests), no new early mode in
// main, no load of the server's libraries per command, and a tool that does
// exactly this, widely used.
inline constexpr char kSetprivPath[] = "/usr/bin/setpriv";

// What a child leads.
enum class ChildGroup {
  // A process group of its own (a command): a signal to the group reaches
  // what it starts.
  kNewGroup,
  // A session of its own (a worker, the janitor): no terminal signal of the
  // server's reaches it, and its session id marks every descendant that did
  // not leave the session (KillSession).
  kNewSession,
};

// One child to start.
struct ChildSpec {
  // An absolute path.
  std::string executable;
  // argv[0] first.
  std::vector<std::string> argv;
  // "NAME=VALUE", the whole environment.
  std::vector<std::string> env;
  // fds[i] becomes the child's fd i (-1: /dev/null, read and write); every
  // other fd is closed in the child.
  std::vector<int> fds;
  // Empty: the caller's.
  std::string working_dir;
  ChildGroup group = ChildGroup::kNewGroup;
  // Set: the child runs as this account (real, effective and saved ids),
  // with `gid` as its only supplementary group and no_new_privs set (setuid
  // binaries give it nothing), through kSetprivPath, which must be there.
  // Needs this process to be privileged (root); argv[0] must then be
  // `executable`. A command that setpriv cannot exec (missing, or not
  // executable by that account) exits 126 or 127, setpriv's message on its
  // stderr.
  std::optional<Credentials> run_as;
};

// What a child of the server's own binary (a process worker, the janitor)
// gets of this process's environment: the few variables a program needs to
// load and run (PATH, HOME, USER, locale, TZ, TMPDIR, LD_LIBRARY_PATH, the
// sanitizers' options). The rest, where secrets live (tokens, database
// passwords), stays with the server.
std::vector<std::string> ScrubbedEnvironment();

// Starts `spec` with posix_spawn (never fork(): the caller may be
// multi-threaded), with default signal dispositions and an empty signal
// mask. When this process is connected to a janitor, the child's group or
// session is registered with it until Reap(). FAILED_PRECONDITION naming
// the executable if it cannot be started; INVALID_ARGUMENT if `run_as` is
// set and argv[0] is not the executable.
absl::StatusOr<pid_t> SpawnChild(const ChildSpec& spec);

// True once `pid`, a child of this process, has exited; it is not reaped
// (its pid, and so its group and session ids, stay reserved until Reap).
// Also true if it is gone (something else reaped it), so that no caller
// waits for an exit it cannot see.
bool HasExited(pid_t pid);

// Waits until HasExited(pid), at most `timeout` (may be infinite), and
// returns HasExited(pid).
bool AwaitExit(pid_t pid, absl::Duration timeout);

// Waits for `pid` to exit, unregisters it from the janitor and reaps it
// (waitpid on `pid` only, never -1). Returns its wait status; nullopt if
// something else reaped it.
std::optional<int> Reap(pid_t pid);

// An fd that polls readable once `pid` exits, or -1 (kernels before 5.3).
int OpenPidFd(pid_t pid);

// SIGKILLs every live process of session `sid` (never this one), pass after
// pass until a pass finds none it has not signalled: a process with a
// pending SIGKILL can no longer fork, so what a member started meanwhile is
// found by the next pass. Reads /proc; costs a scan of every process.
// REQUIRES: `sid` stays reserved meanwhile (its leader is alive or an
// unreaped zombie), so that it cannot name another session.
void KillSession(pid_t sid);

}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_SPAWN_H_
