#include "server/process/worker.h"

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "remex/worker/v1/worker.pb.h"
#include "server/executor/executor.h"
#include "server/process/channel.h"

namespace remex::process {
namespace {

namespace wire = ::remex::worker::v1;

void CloseInheritedFds() {
  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    const int own = dirfd(dir);
    while (dirent* entry = readdir(dir)) {
      int fd = -1;
      if (absl::SimpleAtoi(entry->d_name, &fd) && fd > kWorkerChannelFd &&
          fd != own) {
        fds.push_back(fd);
      }
    }
    closedir(dir);
  }
  for (int fd : fds) close(fd);
}

// Allocation failed: most likely the memory limit. Nothing may allocate
// here, so the supervisor learns of it from the exit code alone.
void OnOutOfMemory() {
  constexpr char kMessage[] = "remex worker: out of memory\n";
  (void)!write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  _exit(kOutOfMemoryExitCode);
}

absl::Status SetLimit(int resource, const char* name, rlim_t value) {
  rlimit limit{.rlim_cur = value, .rlim_max = value};
  if (setrlimit(resource, &limit) != 0) {
    return absl::InternalError(
        absl::StrCat("setrlimit(", name, ", ", value, "): ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status ApplyLimits(const wire::Setup& setup) {
  if (setup.memory_limit_bytes() > 0) {
    absl::Status status =
        SetLimit(RLIMIT_AS, "RLIMIT_AS", setup.memory_limit_bytes());
    if (!status.ok()) return status;
  }
  if (setup.max_open_files() > 0) {
    absl::Status status =
        SetLimit(RLIMIT_NOFILE, "RLIMIT_NOFILE", setup.max_open_files());
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

double CpuSecondsUsed() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// RLIMIT_CPU counts the whole life of the process; moving its soft limit
// before each task makes cpu_limit_seconds a per-task budget. Past it the
// kernel sends SIGXCPU, which ends the worker.
void ArmCpuLimit(int64_t seconds) {
  if (seconds <= 0) return;
  rlimit limit{};
  getrlimit(RLIMIT_CPU, &limit);
  const rlim_t wanted =
      static_cast<rlim_t>(std::ceil(CpuSecondsUsed())) + seconds;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY
                       ? wanted
                       : std::min<rlim_t>(wanted, limit.rlim_max);
  setrlimit(RLIMIT_CPU, &limit);
}

// What the channel reader hands the task loop.
//
// Thread-safe.
class Mailbox {
 public:
  // Reader side.
  void PutRun(wire::Run run) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(std::move(run));
  }
  void Cancel(uint64_t seq) {
    absl::MutexLock lock(&mu_);
    cancelled_.push_back(seq);
    if (seq == current_seq_ && current_token_ != nullptr) {
      current_token_->Cancel();
    }
  }

  // Task loop side: blocks until there is a task; sets `token` now if a
  // cancel for it came first.
  wire::Run Take(executor::CancellationToken& token) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::vector<wire::Run>* pending) { return !pending->empty(); },
        &pending_));
    wire::Run run = std::move(pending_.front());
    pending_.erase(pending_.begin());
    current_seq_ = run.seq();
    current_token_ = &token;
    for (uint64_t seq : cancelled_) {
      if (seq == run.seq()) token.Cancel();
    }
    cancelled_.clear();
    return run;
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    current_token_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  std::vector<wire::Run> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  uint64_t current_seq_ ABSL_GUARDED_BY(mu_) = 0;
  executor::CancellationToken* current_token_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Reads the channel until it closes; then the supervisor is gone or wants
// this worker gone, and the process exits at once, task or not.
void ReadLoop(int fd, Mailbox& mailbox) {
  for (;;) {
    wire::ToWorker message;
    absl::Status status = ReadMessage(fd, message);
    if (!status.ok()) _exit(0);
    if (message.has_run()) {
      mailbox.PutRun(std::move(*message.mutable_run()));
    } else if (message.has_cancel()) {
      mailbox.Cancel(message.cancel().seq());
    }
  }
}

}  // namespace

namespace internal {

wire::FromWorker RunOne(const wire::Run& run,
                        const executor::FunctionRegistry& registry,
                        const executor::CancellationToken& token) {
  wire::FromWorker answer;
  wire::Result& result = *answer.mutable_result();
  result.set_seq(run.seq());
  const executor::FunctionSpec* function = registry.Find(run.function());
  executor::TaskSpec spec;
  spec.function = run.function();
  spec.input = run.input();
  spec.args = executor::Json::parse(run.args_json(), nullptr,
                                    /*allow_exceptions=*/false);
  if (function == nullptr || spec.args.is_discarded()) {
    result.set_code(static_cast<int>(absl::StatusCode::kInternal));
    result.set_message(function == nullptr
                           ? absl::StrCat("function '", run.function(),
                                          "' is not registered in the worker "
                                          "process")
                           : "the worker could not parse the task's args");
    return answer;
  }
  std::shared_ptr<const executor::TaskOutcome> outcome =
      executor::RunFunction(*function, run.task_id(), spec, token);
  result.set_code(static_cast<int>(outcome->error.code));
  result.set_message(outcome->error.message);
  if (outcome->error.code == absl::StatusCode::kOk) {
    result.set_result_json(outcome->result.dump(
        -1, ' ', false, executor::Json::error_handler_t::replace));
    result.set_output(outcome->output);
  }
  return answer;
}

}  // namespace internal

std::optional<pid_t> TakeWorkerFlag(int& argc, char** argv) {
  const std::string prefix = absl::StrCat(kWorkerFlag, "=");
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::StartsWith(arg, prefix)) continue;
    int parent = 0;
    if (!absl::SimpleAtoi(arg.substr(prefix.size()), &parent)) return 0;
    for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
    argv[--argc] = nullptr;
    return parent;
  }
  return std::nullopt;
}

void PrepareWorkerProcess(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died before the line above: then nobody would
  // ever kill this worker.
  if (getppid() != parent) _exit(0);
  // Tells workers from the server in ps and top.
  prctl(PR_SET_NAME, "remex-worker");
  // As the server (server_main.cc): the commands a worker runs as its uid
  // cannot read its memory (other tasks' args and input) or environment.
  prctl(PR_SET_DUMPABLE, 0);
  CloseInheritedFds();
}

int RunWorker(int fd, const executor::FunctionRegistry& registry) {
  wire::ToWorker first;
  if (!ReadMessage(fd, first).ok() || !first.has_setup()) {
    log::Error("worker_setup_failed", "no setup from the supervisor",
               {{"pid", getpid()}});
    return 2;
  }
  const wire::Setup setup = first.setup();
  if (absl::Status status = ApplyLimits(setup); !status.ok()) {
    log::Error("worker_setup_failed",
               absl::StrCat("worker for pool '", setup.pool(),
                            "': ", status.message()),
               {{"pool", setup.pool()}, {"pid", getpid()}});
    return 2;
  }
  std::set_new_handler(OnOutOfMemory);
  wire::FromWorker ready;
  ready.mutable_ready()->set_pid(getpid());
  if (!WriteMessage(fd, ready).ok()) return 0;

  Mailbox mailbox;
  std::thread reader([fd, &mailbox] { ReadLoop(fd, mailbox); });
  reader.detach();  // Ends the process when the channel closes.
  for (;;) {
    executor::CancellationToken token;
    const wire::Run run = mailbox.Take(token);
    ArmCpuLimit(setup.cpu_limit_seconds());
    const wire::FromWorker answer = internal::RunOne(run, registry, token);
    mailbox.Done();
    // The supervisor is gone; the reader thread still uses `mailbox`.
    if (!WriteMessage(fd, answer).ok()) _exit(0);
  }
}

}  // namespace remex::process
