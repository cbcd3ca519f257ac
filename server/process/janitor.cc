#include "server/process/janitor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/process/spawn.h"

namespace remex::process {
namespace {

// One record of the janitor's stream; far below PIPE_BUF, and SEQPACKET
// keeps it whole.
struct Record {
  internal::JanitorOp op;
  int32_t id;
};

// The sending end of this process's janitor socket, or -1. Set once by
// StartJanitor, before any child is started; read by every spawning thread.
std::atomic<int> janitor_fd{-1};

// The second stage's flag value: "<server pid>" + this.
constexpr absl::string_view kDetached = ":detached";

// How long StartJanitor waits for the janitor to say it runs: its exec and
// the load of the server's libraries take milliseconds, more on a loaded
// machine.
constexpr int kReadyTimeoutMillis = 30'000;

// What the janitor sends, once, when it runs.
constexpr char kReady = 'r';

// Serves the janitor's stream on `fd` until its end, then kills what is
// still watched.
int RunJanitor(int fd) {
  // Tells the janitor from the server in ps and top.
  prctl(PR_SET_NAME, "remex-janitor");
  // As the server (server_main.cc): commands running as its uid cannot
  // read its memory or /proc files.
  prctl(PR_SET_DUMPABLE, 0);
  if (send(fd, &kReady, 1, MSG_NOSIGNAL) != 1) return 1;
  std::set<pid_t> groups;
  std::set<pid_t> sessions;
  for (;;) {
    Record record;
    const ssize_t n = recv(fd, &record, sizeof(record), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server is gone (or the socket failed)
    if (n != sizeof(record)) continue;
    switch (record.op) {
      case internal::JanitorOp::kWatchGroup:
        groups.insert(record.id);
        break;
      case internal::JanitorOp::kWatchSession:
        sessions.insert(record.id);
        break;
      case internal::JanitorOp::kForget:
        groups.erase(record.id);
        sessions.erase(record.id);
        break;
    }
  }
  for (pid_t group : groups) kill(-group, SIGKILL);
  for (pid_t session : sessions) KillSession(session);
  return 0;
}

// The first stage, a child of the server: starts the janitor proper in a
// session of its own and exits, so that the janitor is no child of the
// server (which never waits for it) and is left to init.
int DetachJanitor(absl::string_view server_pid, const char* argv0) {
  absl::StatusOr<pid_t> janitor = SpawnChild(
      {.executable = "/proc/self/exe",
       .argv = {argv0, absl::StrCat(kJanitorFlag, "=", server_pid, kDetached)},
       .env = ScrubbedEnvironment(),
       .fds = {STDIN_FILENO, -1, -1},
       // Pins no mount of the server's.
       .working_dir = "/",
       .group = ChildGroup::kNewSession});
  return janitor.ok() ? 0 : 1;
}

// Waits for the janitor's kReady on `fd`: until then it is not known to run
// (it would miss no record, which the socket keeps, but it might not be
// there to act on them), and its /proc files are not yet closed to the
// commands the server will run.
absl::Status AwaitReady(int fd) {
  pollfd ready = {.fd = fd, .events = POLLIN, .revents = 0};
  int polled;
  do {
    polled = poll(&ready, 1, kReadyTimeoutMillis);
  } while (polled < 0 && errno == EINTR);
  char byte = 0;
  if (polled == 1 && recv(fd, &byte, 1, MSG_DONTWAIT) == 1 && byte == kReady) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot start the janitor: it did not report running within ",
      kReadyTimeoutMillis / 1000, " s"));
}

}  // namespace

absl::Status StartJanitor(const std::string& executable,
                          const std::string& argv0) {
  int ends[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start the janitor: socketpair: ", strerror(errno)));
  }
  absl::StatusOr<pid_t> first_stage =
      SpawnChild({.executable = executable,
                  .argv = {argv0, absl::StrCat(kJanitorFlag, "=", getpid())},
                  .env = ScrubbedEnvironment(),
                  .fds = {ends[0], -1, -1}});
  close(ends[0]);
  const std::optional<int> status =
      first_stage.ok() ? Reap(*first_stage) : std::nullopt;
  if (!status.has_value() || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    close(ends[1]);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start the janitor",
        first_stage.ok() ? ""
                         : absl::StrCat(": ", first_stage.status().message())));
  }
  if (absl::Status ready = AwaitReady(ends[1]); !ready.ok()) {
    close(ends[1]);
    return ready;
  }
  janitor_fd.store(ends[1], std::memory_order_release);
  return absl::OkStatus();
}

std::optional<int> RunJanitorIfAsked(int argc, char** argv) {
  const std::string prefix = absl::StrCat(kJanitorFlag, "=");
  for (int i = 1; i < argc; ++i) {
    absl::string_view value = argv[i];
    if (!absl::ConsumePrefix(&value, prefix)) continue;
    if (absl::ConsumeSuffix(&value, kDetached)) return RunJanitor(STDIN_FILENO);
    return DetachJanitor(value, argv[0]);
  }
  return std::nullopt;
}

namespace internal {

void TellJanitor(JanitorOp op, pid_t id) {
  const int fd = janitor_fd.load(std::memory_order_acquire);
  if (fd < 0) return;
  const Record record = {.op = op, .id = id};
  // A janitor that is gone is no reason to fail (or SIGPIPE) the server.
  while (send(fd, &record, sizeof(record), MSG_NOSIGNAL) < 0 &&
         errno == EINTR) {
  }
}

}  // namespace internal
}  // namespace remex::process
