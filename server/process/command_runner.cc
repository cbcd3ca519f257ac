#include "server/process/command_runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/process/spawn.h"

namespace remex::process {

using ::remex::executor::CancellationToken;

namespace {

// How often a running command checks its cancellation token.
constexpr absl::Duration kCancelPollInterval = absl::Milliseconds(50);
constexpr size_t kReadChunk = 64 * 1024;
// How deep RemoveContents goes into what a command left in its private
// directory (one open fd per level); what lies deeper stays, and the
// directory with it.
constexpr int kMaxRemoveDepth = 256;

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

// The child's end of its three pipes, and ours.
struct ChildPipes {
  Fd stdin_read, stdin_write;
  Fd stdout_read, stdout_write;
  Fd stderr_read, stderr_write;
};

// Removes everything in the directory open as `dir_fd` (taken and closed)
// through fds, never through a path or a symbolic link: whatever a command
// (or a descendant that escaped its group) does meanwhile, the server only
// removes entries below the directory it made.
void RemoveContents(int dir_fd, int depth) {
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return;
  }
  const int fd = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    const char* name = entry->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
    if (unlinkat(fd, name, 0) == 0 || errno != EISDIR) continue;
    if (depth >= kMaxRemoveDepth) continue;
    int child =
        openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0 && errno == EACCES) {
      // A directory the command made unreadable (a server that is not root
      // runs commands as itself, so it owns it).
      fchmodat(fd, name, 0700, 0);
      child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (child >= 0) RemoveContents(child, depth + 1);
    unlinkat(fd, name, AT_REMOVEDIR);
  }
  closedir(dir);
}

// A fresh directory for one command: made 0700 in `parent`, handed to
// `owner` if set; removed with its contents by the destructor.
//
// Not thread-safe; owned by the thread that runs the command.
class PrivateDir {
 public:
  static absl::StatusOr<std::unique_ptr<PrivateDir>> Make(
      const std::string& parent, const std::optional<Credentials>& owner) {
    std::string path = parent;
    if (path.empty() || path.back() != '/') path += '/';
    path += "remex-cmd-XXXXXX";
    if (mkdtemp(path.data()) == nullptr) {
      return ErrnoError(absl::StrCat("cannot make a directory in ", parent));
    }
    auto dir = std::unique_ptr<PrivateDir>(new PrivateDir(std::move(path)));
    if (owner.has_value() &&
        chown(dir->path().c_str(), owner->uid, owner->gid) != 0) {
      return ErrnoError(absl::StrCat("chown ", dir->path()));
    }
    return dir;
  }

  ~PrivateDir() {
    const int fd =
        open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) RemoveContents(fd, 0);
    rmdir(path_.c_str());
  }
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit PrivateDir(std::string path) : path_(std::move(path)) {}

  const std::string path_;
};

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
        exit_fd_(OpenPidFd(pid)) {
    for (const Fd* fd : {&feeder_.fd, &stdout_.fd, &stderr_.fd}) {
      SetNonBlocking(fd->get());
    }
  }

  // Returns once the child is reaped.
  void Run() {
    ScopedSigpipeBlock no_sigpipe;
    feeder_.WriteAvailable();
    while (!HasExited(pid_)) {
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
    const std::optional<int> status = process::Reap(pid_);
    if (!status.has_value()) {
      result_.exit_code = -1;  // how it ended is lost
    } else if (WIFEXITED(*status)) {
      result_.exit_code = WEXITSTATUS(*status);
    } else if (WIFSIGNALED(*status)) {
      result_.signal = WTERMSIG(*status);
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

}  // namespace

absl::StatusOr<CommandResult> RunCommand(
    const CommandRun& run, const CancellationToken& cancellation) {
  if (run.argv.empty()) {
    return absl::InvalidArgumentError("RunCommand: empty argv");
  }
  if (!run.private_dir_in.empty() && !run.working_dir.empty()) {
    return absl::InvalidArgumentError(
        "RunCommand: both a working_dir and a private directory");
  }
  // Declared first, so that it is removed after the child is reaped.
  std::unique_ptr<PrivateDir> private_dir;
  if (!run.private_dir_in.empty()) {
    REMEX_ASSIGN_OR_RETURN(private_dir,
                           PrivateDir::Make(run.private_dir_in, run.run_as));
  }
  ChildPipes pipes;
  REMEX_RETURN_IF_ERROR(MakePipe(pipes.stdin_read, pipes.stdin_write));
  REMEX_RETURN_IF_ERROR(MakePipe(pipes.stdout_read, pipes.stdout_write));
  REMEX_RETURN_IF_ERROR(MakePipe(pipes.stderr_read, pipes.stderr_write));
  // Its own process group, so that a cancel reaches everything it started.
  REMEX_ASSIGN_OR_RETURN(
      const pid_t pid,
      SpawnChild({.executable = run.argv[0],
                  .argv = run.argv,
                  .env = run.env,
                  .fds = {pipes.stdin_read.get(), pipes.stdout_write.get(),
                          pipes.stderr_write.get()},
                  .working_dir = private_dir != nullptr ? private_dir->path()
                                                        : run.working_dir,
                  .group = ChildGroup::kNewGroup,
                  .run_as = run.run_as}));
  // The child holds its ends now; ours must close, or no EOF ever comes.
  pipes.stdin_read.Close();
  pipes.stdout_write.Close();
  pipes.stderr_write.Close();
  CommandResult result;
  ChildRun(pid, run, pipes, result, cancellation).Run();
  return result;
}

}  // namespace remex::process
