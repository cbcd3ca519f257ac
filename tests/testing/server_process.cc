#include "tests/testing/server_process.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

#ifndef REMEX_SERVER_PATH
#error "REMEX_SERVER_PATH must be the path of the remex-server binary"
#endif

namespace remex::testing {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(20);
constexpr absl::Duration kStopTimeout = absl::Seconds(5);
constexpr absl::string_view kListeningOn = "listening on ";
constexpr absl::string_view kMetricsListeningOn = "metrics listening on ";
// util-linux (essential in Debian): runs the server with a parent-death
// signal, so that a test killed by ctest's timeout does not leave its
// server running. The signal comes when the thread that started the server
// ends: servers are started on the test's own thread.
constexpr char kSetpriv[] = "/usr/bin/setpriv";

// The address in a line containing `marker` followed by ADDRESS, or "".
std::string AddressAfter(absl::string_view line, absl::string_view marker) {
  const size_t at = line.find(marker);
  if (at == absl::string_view::npos) return "";
  line.remove_prefix(at + marker.size());
  return std::string(line.substr(0, line.find_first_of(" \t\r")));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    std::vector<std::string> extra_args) {
  return StartBinary(REMEX_SERVER_PATH, std::move(extra_args));
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::StartBinary(
    std::string binary, std::vector<std::string> extra_args) {
  std::vector<std::string> argv;
  if (access(kSetpriv, X_OK) == 0) {
    argv = {kSetpriv, "--pdeathsig", "KILL", "--"};
  }
  argv.insert(argv.end(), {std::move(binary), "--listen", "127.0.0.1:0",
                           "--metrics-listen", "127.0.0.1:0"});
  argv.insert(argv.end(), std::make_move_iterator(extra_args.begin()),
              std::make_move_iterator(extra_args.end()));
  std::string tmp_dir =
      absl::StrCat(::testing::TempDir(), "remex_server_tmp_XXXXXX");
  if (mkdtemp(tmp_dir.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", tmp_dir));
  }
  absl::StatusOr<SpawnedProcess> spawned =
      Spawn(argv, {absl::StrCat("TMPDIR=", tmp_dir)});
  if (!spawned.ok()) {
    std::error_code ignored;
    std::filesystem::remove_all(tmp_dir, ignored);
    return spawned.status();
  }
  std::unique_ptr<ServerProcess> server(
      new ServerProcess(spawned->pid, spawned->stdout_fd, spawned->stderr_fd,
                        std::move(tmp_dir)));
  const absl::Status status = server->AwaitAddress(absl::Now() + kStartTimeout);
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), "; server output:\n",
                                     server->ServerOutput()));
  }
  return server;
}

ServerProcess::ServerProcess(pid_t pid, int stdout_fd, int stderr_fd,
                             std::string tmp_dir)
    : pid_(pid),
      stdout_fd_(stdout_fd),
      stderr_fd_(stderr_fd),
      tmp_dir_(std::move(tmp_dir)) {
  reader_ = std::thread([this] { ReadOutput(); });
}

ServerProcess::~ServerProcess() {
  if (!reaped_) {
    Signal(SIGTERM);
    (void)Wait(kStopTimeout);
  }
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  reader_.join();
  close(stdout_fd_);
  close(stderr_fd_);
  std::error_code ignored;
  std::filesystem::remove_all(tmp_dir_, ignored);
}

int ServerProcess::Signal(int sig) { return kill(pid_, sig); }

absl::StatusOr<int> ServerProcess::Wait(absl::Duration timeout) {
  absl::StatusOr<int> exit_code = WaitForExit(pid_, timeout);
  reaped_ = true;
  return exit_code;
}

std::vector<std::string> ServerProcess::output() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

std::string ServerProcess::ServerOutput() const {
  return absl::StrJoin(output(), "\n");
}

void ServerProcess::ReadOutput() {
  PumpPipes(
      {stdout_fd_, stderr_fd_},
      [this](size_t index, const char* data, size_t size) {
        Consume(static_cast<int>(index), data, size);
      },
      [this] {
        absl::MutexLock lock(&mu_);
        return stop_;
      });
  absl::MutexLock lock(&mu_);
  for (std::string& partial : partial_) {
    if (!partial.empty()) lines_.push_back(std::move(partial));
  }
  output_closed_ = true;
}

void ServerProcess::Consume(int stream, const char* data, size_t size) {
  absl::MutexLock lock(&mu_);
  std::string& partial = partial_[stream];
  partial.append(data, size);
  for (size_t end; (end = partial.find('\n')) != std::string::npos;) {
    std::string line = partial.substr(0, end);
    partial.erase(0, end + 1);
    if (stream == 0) {
      if (const std::string metrics = AddressAfter(line, kMetricsListeningOn);
          !metrics.empty()) {
        if (metrics_listening_.empty()) metrics_listening_ = metrics;
      } else if (listening_.empty()) {
        listening_ = AddressAfter(line, kListeningOn);
      }
    }
    lines_.push_back(std::move(line));
  }
}

absl::Status ServerProcess::AwaitAddress(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  const auto started_or_closed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !listening_.empty() || output_closed_;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&started_or_closed), deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat("remex-server printed no '", kListeningOn,
                     "' line within ", absl::FormatDuration(kStartTimeout)));
  }
  if (listening_.empty()) {
    return absl::UnavailableError("remex-server exited before listening");
  }
  address_ = listening_;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ServerProcess::MetricsAddress(
    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto known_or_closed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !metrics_listening_.empty() || output_closed_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&known_or_closed), timeout);
  if (metrics_listening_.empty()) {
    return absl::NotFoundError(absl::StrCat("remex-server printed no '",
                                            kMetricsListeningOn, "' line"));
  }
  return metrics_listening_;
}

}  // namespace remex::testing
