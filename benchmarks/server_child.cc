#include "server_child.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

extern char** environ;

namespace remex::bench {
namespace {

constexpr char kListeningOn[] = "listening on ";
constexpr char kMetricsListeningOn[] = "metrics listening on ";
constexpr size_t kKeptLines = 50;

// The number after `key` in a /proc status line like "VmRSS:  1234 kB".
bool ParseStatusField(absl::string_view line, absl::string_view key,
                      int64_t* value) {
  if (!absl::ConsumePrefix(&line, key)) return false;
  line = absl::StripAsciiWhitespace(line);
  absl::ConsumeSuffix(&line, " kB");
  return absl::SimpleAtoi(line, value);
}

}  // namespace

absl::StatusOr<double> ScrapeMetric(const std::string& address,
                                    const std::string& name) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError("bad metrics address " + address);
  }
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &peer.sin_addr) !=
      1) {
    return absl::InvalidArgumentError("bad metrics address " + address);
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string page;
  if (connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) == 0) {
    const std::string request =
        absl::StrCat("GET /metrics HTTP/1.0\r\nHost: ", address, "\r\n\r\n");
    if (write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) {
        page.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) {
      continue;
    }
    double value = 0;
    if (absl::SimpleAtod(absl::StripAsciiWhitespace(line), &value)) {
      return value;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no ", name, " on http://", address, "/metrics"));
}

absl::StatusOr<ProcessUsage> ReadProcessUsage(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  if (!status) {
    return absl::NotFoundError(absl::StrCat("no /proc/", pid, "/status"));
  }
  ProcessUsage usage;
  int64_t value = 0;
  for (std::string line; std::getline(status, line);) {
    if (ParseStatusField(line, "Threads:", &value)) {
      usage.threads = static_cast<int>(value);
    } else if (ParseStatusField(line, "VmRSS:", &value)) {
      usage.rss_bytes = value * 1024;
    }
  }
  return usage;
}

absl::StatusOr<std::unique_ptr<ServerChild>> ServerChild::Start(
    const std::string& binary, const std::vector<std::string>& args) {
  // Metrics on, as a deployed server has them, on a port of its own.
  std::vector<std::string> argv = {binary, "--listen", "127.0.0.1:0",
                                   "--metrics-listen", "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (std::string& arg : argv) c_argv.push_back(arg.data());
  c_argv.push_back(nullptr);

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  pid_t pid = 0;
  const int error = posix_spawn(&pid, binary.c_str(), &actions, nullptr,
                                c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (error != 0) {
    close(pipe_fds[0]);
    return absl::NotFoundError(
        absl::StrCat("cannot start ", binary, ": ", strerror(error)));
  }
  std::unique_ptr<ServerChild> child(new ServerChild(pid, pipe_fds[0]));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::MutexLock lock(&child->mu_);
  for (;;) {
    const size_t seen = child->total_lines_;
    for (const std::string& line : child->lines_) {
      const size_t at = line.find(kListeningOn);
      if (at == std::string::npos) continue;
      const std::string rest = line.substr(at + sizeof(kListeningOn) - 1);
      child->address_ = rest.substr(0, rest.find_first_of(" \t\r"));
      return child;
    }
    if (child->closed_ || absl::Now() > deadline) break;
    ServerChild* c = child.get();
    auto more_output = [c, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return c->closed_ || c->total_lines_ > seen;
    };
    c->mu_.AwaitWithDeadline(absl::Condition(&more_output), deadline);
  }
  return absl::UnavailableError(absl::StrCat(
      binary, " did not print '", kListeningOn, "ADDRESS'; its output:\n",
      absl::StrJoin(child->lines_, "\n")));
}

ServerChild::ServerChild(pid_t pid, int output_fd)
    : pid_(pid), output_fd_(output_fd) {
  reader_ = std::thread([this] { ReadOutput(); });
}

ServerChild::~ServerChild() {
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  reader_.join();
  close(output_fd_);
}

void ServerChild::ReadOutput() {
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(output_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      closed_ = true;
      return;
    }
    partial_.append(buffer, static_cast<size_t>(n));
    for (size_t end; (end = partial_.find('\n')) != std::string::npos;) {
      lines_.push_back(partial_.substr(0, end));
      ++total_lines_;
      partial_.erase(0, end + 1);
      if (lines_.size() > kKeptLines) lines_.erase(lines_.begin());
    }
  }
}

absl::StatusOr<std::string> ServerChild::MetricsAddress(
    absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  for (;;) {
    for (const std::string& line : lines_) {
      const size_t at = line.find(kMetricsListeningOn);
      if (at == std::string::npos) continue;
      const std::string rest =
          line.substr(at + sizeof(kMetricsListeningOn) - 1);
      return rest.substr(0, rest.find_first_of(" \t\r"));
    }
    const size_t seen = total_lines_;
    auto more_output = [this, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return closed_ || total_lines_ > seen;
    };
    if (closed_ ||
        !mu_.AwaitWithDeadline(absl::Condition(&more_output), deadline)) {
      return absl::NotFoundError("the server printed no metrics address");
    }
  }
}

std::string ServerChild::RecentOutput() const {
  absl::MutexLock lock(&mu_);
  return absl::StrJoin(lines_, "\n");
}

}  // namespace remex::bench
