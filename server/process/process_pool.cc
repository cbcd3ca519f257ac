#include "server/process/process_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "remex/worker/v1/worker.pb.h"
#include "server/process/channel.h"
#include "server/process/worker.h"

extern char** environ;

namespace remex::process {

namespace wire = ::remex::worker::v1;
using executor::Task;
using executor::TaskState;

namespace internal {
namespace {

// Respawn delays after workers that die before they are ready (a broken
// binary or plugin), so that they do not spin.
constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);

// What workers inherit of the server's environment; the rest is scrubbed.
constexpr const char* kKeptEnvironment[] = {
    "PATH=",         "HOME=",          "USER=",
    "LANG=",         "LC_ALL=",        "LC_CTYPE=",
    "TZ=",           "TMPDIR=",        "LD_LIBRARY_PATH=",
    "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS="};

std::vector<std::string> ScrubbedEnvironment() {
  std::vector<std::string> kept;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    for (const char* prefix : kKeptEnvironment) {
      if (absl::StartsWith(*entry, prefix)) kept.emplace_back(*entry);
    }
  }
  return kept;
}

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  const char* description = sigdescr_np(signal);
  return absl::StrCat(abbrev != nullptr ? absl::StrCat("SIG", abbrev)
                                        : absl::StrCat("signal ", signal),
                      description != nullptr
                          ? absl::StrCat(" (", description, ")")
                          : std::string());
}

// Why a worker that ended on its own did, from its wait status.
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

// How long a worker whose channel closed gets to finish exiting before it is
// killed (it normally takes microseconds; a worker whose function closed the
// channel's fd would otherwise never be reaped).
constexpr absl::Duration kExitGrace = absl::Seconds(1);

// Reaps `pid` (a child of this process, never any other) and returns its
// wait status; kills it first if it has not exited within `grace`.
int Reap(pid_t pid, absl::Duration grace) {
  int status = 0;
  const absl::Time deadline = absl::Now() + grace;
  for (;;) {
    const pid_t reaped = waitpid(pid, &status, WNOHANG);
    if (reaped == pid || (reaped < 0 && errno != EINTR)) return status;
    if (reaped == 0 && absl::Now() >= deadline) break;
    if (reaped == 0) absl::SleepFor(absl::Microseconds(200));
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

// Wakes the supervisor's poll() from other threads. Shared with the done
// callbacks of dispatched tasks, which may outlive the pool.
//
// Thread-safe.
class Wakeup {
 public:
  Wakeup() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~Wakeup() { close(fd_); }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  int fd() const { return fd_; }
  void Notify() const {
    const uint64_t one = 1;
    (void)!write(fd_, &one, sizeof(one));
  }
  void Drain() const {
    uint64_t count = 0;
    (void)!read(fd_, &count, sizeof(count));
  }

 private:
  const int fd_;
};

// One worker process, as the supervisor sees it.
struct Worker {
  pid_t pid = -1;
  int fd = -1;
  FrameReader reader;
  bool ready = false;
  bool retired = false;
  // The task it runs (null: idle), which attempt, and its channel seq.
  std::shared_ptr<Task> task;
  int32_t attempt = 0;
  uint64_t seq = 0;
  // Set once the task ended elsewhere (cancel, timeout) and the worker was
  // asked to stop; past kill_at it is killed.
  bool cancel_sent = false;
  absl::Time kill_at = absl::InfiniteFuture();
  int64_t tasks_run = 0;
};

// The pool's supervisor thread: the only code that spawns, reads, writes,
// kills and reaps the workers.
//
// Thread-compatible: every method but Notify() and AwaitStartup() runs on
// the supervisor thread.
class Supervisor {
 public:
  explicit Supervisor(ProcessPool& pool)
      : pool_(pool),
        config_(pool.config_),
        wakeup_(std::make_shared<Wakeup>()),
        environment_(ScrubbedEnvironment()) {}

  void Notify() const { wakeup_->Notify(); }

  // OK once the first config().workers workers are ready; the first error
  // if one of them fails; DEADLINE_EXCEEDED past `deadline`.
  absl::Status AwaitStartup(absl::Time deadline) {
    if (!startup_done_.WaitForNotificationWithDeadline(deadline)) {
      return absl::UnavailableError(
          absl::StrCat("pool '", config_.name, "': workers not ready within ",
                       absl::FormatDuration(pool_.command_.startup_timeout)));
    }
    return startup_status_;
  }

  void Loop();

 private:
  // Why the supervisor ends a worker.
  enum class Ending { kDied, kKilledAfterCancel, kRecycled, kShutdown };

  absl::Status Spawn();
  void FailStartup(absl::Status status);
  void Poll(absl::Time now);
  void ReadFrom(Worker& worker);
  void OnMessage(Worker& worker, const wire::FromWorker& message);
  void OnResult(Worker& worker, const wire::Result& result);
  void WatchCancels(absl::Time now);
  void Dispatch();
  bool StartTask(Worker& worker, std::shared_ptr<Task> task);
  void End(Worker& worker, Ending ending, std::string why = "");
  void SettleLostTask(Worker& worker, const std::string& cause);
  void RespawnMissing(absl::Time now);
  void EraseRetired();
  void Publish();
  bool Stopping() const {
    absl::MutexLock lock(&pool_.mu_);
    return pool_.stopping_;
  }

  ProcessPool& pool_;
  const executor::PoolConfig& config_;
  const std::shared_ptr<Wakeup> wakeup_;
  const std::vector<std::string> environment_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t next_seq_ = 1;
  absl::Duration backoff_ = absl::ZeroDuration();
  absl::Time respawn_at_ = absl::InfinitePast();
  std::map<std::string, int64_t> restarts_;

  int ready_once_ = 0;
  absl::Notification startup_done_;
  absl::Status startup_status_;  // Written before startup_done_ is notified.
};

void Supervisor::Loop() {
  for (int i = 0; i < config_.workers; ++i) {
    if (absl::Status status = Spawn(); !status.ok()) {
      FailStartup(status);
      break;
    }
  }
  while (!Stopping()) {
    const absl::Time now = absl::Now();
    WatchCancels(now);
    EraseRetired();
    RespawnMissing(now);
    Dispatch();
    EraseRetired();
    Publish();
    Poll(absl::Now());
  }
  for (auto& worker : workers_) {
    if (!worker->retired) End(*worker, Ending::kShutdown);
  }
  workers_.clear();
  Publish();
}

absl::Status Supervisor::Spawn() {
  int channel[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
    return absl::UnavailableError(
        absl::StrCat("socketpair: ", strerror(errno)));
  }
  // Keep the child's end clear of the fd it is moved to.
  if (channel[1] <= kWorkerChannelFd) {
    const int moved = fcntl(channel[1], F_DUPFD_CLOEXEC, kWorkerChannelFd + 1);
    close(channel[1]);
    channel[1] = moved;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  // What functions print must not mix with the server's own stdout.
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, channel[1], kWorkerChannelFd);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  // Its own session: a Ctrl-C on the server's terminal is for the server,
  // which then stops its workers itself.
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF |
                                            POSIX_SPAWN_SETSID);

  std::vector<std::string> args = pool_.command_.argv;
  if (args.empty()) args.push_back(pool_.command_.executable);
  args.push_back(absl::StrCat(kWorkerFlag, "=", getpid()));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : environment_) {
    envp.push_back(const_cast<char*>(entry.c_str()));
  }
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int error =
      posix_spawn(&pid, pool_.command_.executable.c_str(), &actions,
                  &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(channel[1]);
  if (error != 0) {
    close(channel[0]);
    return absl::UnavailableError(
        absl::StrCat("pool '", config_.name, "': cannot start worker ",
                     pool_.command_.executable, ": ", strerror(error)));
  }
  auto worker = std::make_unique<Worker>();
  worker->pid = pid;
  worker->fd = channel[0];
  wire::ToWorker setup;
  wire::Setup& limits = *setup.mutable_setup();
  limits.set_pool(config_.name);
  limits.set_memory_limit_bytes(config_.memory_limit_bytes);
  limits.set_cpu_limit_seconds(config_.cpu_limit_seconds);
  limits.set_max_open_files(config_.max_open_files);
  // A worker that dies at once is found by Poll(); nothing to do here.
  (void)WriteMessage(worker->fd, setup);
  workers_.push_back(std::move(worker));
  return absl::OkStatus();
}

void Supervisor::FailStartup(absl::Status status) {
  if (startup_done_.HasBeenNotified()) return;
  startup_status_ = std::move(status);
  startup_done_.Notify();
}

void Supervisor::Poll(absl::Time now) {
  absl::Time wake_at = absl::InfiniteFuture();
  for (const auto& worker : workers_) {
    wake_at = std::min(wake_at, worker->kill_at);
  }
  if (static_cast<int>(workers_.size()) < config_.workers) {
    wake_at = std::min(wake_at, respawn_at_);
  }
  int timeout_ms = -1;
  if (wake_at != absl::InfiniteFuture()) {
    timeout_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                wake_at - now, absl::Milliseconds(1))),
                            0, 60'000));
  }
  std::vector<pollfd> fds;
  fds.push_back({.fd = wakeup_->fd(), .events = POLLIN});
  for (const auto& worker : workers_) {
    fds.push_back({.fd = worker->fd, .events = POLLIN});
  }
  if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
  if (fds[0].revents != 0) wakeup_->Drain();
  // workers_ does not change size before EraseRetired().
  for (size_t i = 1; i < fds.size(); ++i) {
    if (fds[i].revents != 0) ReadFrom(*workers_[i - 1]);
  }
}

void Supervisor::ReadFrom(Worker& worker) {
  const absl::Status read = worker.reader.ReadAvailable(worker.fd);
  for (;;) {
    wire::FromWorker message;
    absl::StatusOr<bool> next = worker.reader.Next(message);
    if (!next.ok()) {
      End(worker, Ending::kDied,
          absl::StrCat("worker sent a bad message (", next.status().message(),
                       ")"));
      return;
    }
    if (!*next) break;
    OnMessage(worker, message);
    if (worker.retired) return;
  }
  if (!read.ok()) End(worker, Ending::kDied);
}

void Supervisor::OnMessage(Worker& worker, const wire::FromWorker& message) {
  if (message.has_ready()) {
    worker.ready = true;
    backoff_ = absl::ZeroDuration();
    if (++ready_once_ == config_.workers) FailStartup(absl::OkStatus());
  } else if (message.has_result()) {
    OnResult(worker, message.result());
  }
}

void Supervisor::OnResult(Worker& worker, const wire::Result& result) {
  if (worker.task == nullptr || result.seq() != worker.seq) return;
  std::shared_ptr<Task> task = std::move(worker.task);
  worker.task = nullptr;
  worker.cancel_sent = false;
  worker.kill_at = absl::InfiniteFuture();
  ++worker.tasks_run;
  TaskState state = TaskState::kSucceeded;
  std::shared_ptr<const executor::TaskOutcome> outcome;
  if (result.code() != 0) {
    state = TaskState::kFailed;
    outcome = executor::ErrorOutcome(
        static_cast<absl::StatusCode>(result.code()), result.message());
  } else {
    auto produced = std::make_shared<executor::TaskOutcome>();
    produced->result = executor::Json::parse(result.result_json(), nullptr,
                                             /*allow_exceptions=*/false);
    produced->output = result.output();
    if (produced->result.is_discarded()) {
      state = TaskState::kFailed;
      outcome = executor::ErrorOutcome(absl::StatusCode::kInternal,
                                       "the worker sent an unparsable result");
    } else {
      outcome = std::move(produced);
    }
  }
  Publish();  // Stats are current when the task's callbacks run.
  // Discarded by the executor if the task was cancelled or timed out.
  pool_.runner_.CompleteRun(task, worker.attempt, state, std::move(outcome));
  if (config_.max_tasks_per_worker > 0 &&
      worker.tasks_run >= config_.max_tasks_per_worker) {
    End(worker, Ending::kRecycled);
  }
}

void Supervisor::WatchCancels(absl::Time now) {
  for (auto& worker : workers_) {
    if (worker->retired || worker->task == nullptr ||
        !worker->task->cancellation().cancelled()) {
      continue;
    }
    if (!worker->cancel_sent) {
      worker->cancel_sent = true;
      worker->kill_at = now + config_.cancel_grace;
      wire::ToWorker cancel;
      cancel.mutable_cancel()->set_seq(worker->seq);
      (void)WriteMessage(worker->fd, cancel);
    }
    if (now >= worker->kill_at) End(*worker, Ending::kKilledAfterCancel);
  }
}

void Supervisor::Dispatch() {
  for (auto& worker : workers_) {
    while (worker->ready && !worker->retired && worker->task == nullptr) {
      std::shared_ptr<Task> task;
      {
        absl::MutexLock lock(&pool_.mu_);
        task = pool_.queue_.PopFront();
      }
      if (task == nullptr) return;
      if (!pool_.runner_.BeginRun(task)) continue;  // ended while queued
      StartTask(*worker, std::move(task));
    }
  }
}

bool Supervisor::StartTask(Worker& worker, std::shared_ptr<Task> task) {
  worker.task = task;
  worker.attempt = task->attempt();
  worker.seq = next_seq_++;
  worker.cancel_sent = false;
  worker.kill_at = absl::InfiniteFuture();
  // Wakes this loop when the task ends elsewhere (cancel, run_timeout), so
  // that the worker is told at once.
  task->AddDoneCallback(
      [wakeup = wakeup_](const executor::TaskSnapshot&) { wakeup->Notify(); });
  wire::ToWorker message;
  wire::Run& run = *message.mutable_run();
  run.set_seq(worker.seq);
  run.set_task_id(task->id());
  run.set_function(task->spec().function);
  // Never throws: a string that is not UTF-8 is replaced, not fatal.
  run.set_args_json(task->spec().args.dump(
      -1, ' ', false, executor::Json::error_handler_t::replace));
  run.set_input(task->spec().input);
  run.set_attempt(worker.attempt);
  if (absl::Status sent = WriteMessage(worker.fd, message); !sent.ok()) {
    End(worker, Ending::kDied);
    return false;
  }
  return true;
}

void Supervisor::End(Worker& worker, Ending ending, std::string why) {
  if (worker.retired) return;
  worker.retired = true;
  // A worker that died on its own is reaped for its cause; any other is
  // killed first (killing a zombie is harmless).
  const bool kill_now = ending != Ending::kDied || !why.empty();
  if (kill_now) kill(worker.pid, SIGKILL);
  const int status =
      Reap(worker.pid, kill_now ? absl::InfiniteDuration() : kExitGrace);
  close(worker.fd);
  worker.fd = -1;
  if (why.empty()) why = DescribeDeath(status, config_);
  if (ending == Ending::kShutdown) {
    if (worker.task != nullptr) {
      pool_.runner_.CompleteRun(
          worker.task, worker.attempt, TaskState::kCancelled,
          executor::ErrorOutcome(absl::StatusCode::kCancelled,
                                 "the pool shut down"));
    }
    worker.task = nullptr;
    return;
  }
  std::string reason = "crash";
  if (ending == Ending::kRecycled) reason = "recycle";
  if (ending == Ending::kKilledAfterCancel) {
    reason =
        worker.task->state() == TaskState::kTimedOut ? "timeout" : "cancel";
  }
  ++restarts_[reason];
  if (!worker.ready) {
    // Died before it could take a task: a broken binary, plugin or limit.
    backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
    respawn_at_ = absl::Now() + backoff_;
    std::fprintf(stderr,
                 "remex-server: pool '%s': worker %d %s before it was ready; "
                 "next start in %s\n",
                 config_.name.c_str(), static_cast<int>(worker.pid),
                 why.c_str(), absl::FormatDuration(backoff_).c_str());
    if (!startup_done_.HasBeenNotified()) {
      FailStartup(absl::UnavailableError(
          absl::StrCat("pool '", config_.name, "': ", why,
                       " before it was ready (see the server's stderr)")));
    }
  }
  Publish();  // Stats are current when the task's callbacks run.
  if (worker.task != nullptr) SettleLostTask(worker, why);
}

void Supervisor::SettleLostTask(Worker& worker, const std::string& cause) {
  std::shared_ptr<Task> task = std::move(worker.task);
  worker.task = nullptr;
  if (IsTerminal(task->state())) return;  // cancelled or timed out already
  if (pool_.runner_.RetryRun(task, worker.attempt)) {
    absl::MutexLock lock(&pool_.mu_);
    // Accepted once already: max_queue does not apply.
    (void)pool_.queue_.Push(task, /*over_limit=*/true);
    return;
  }
  pool_.runner_.CompleteRun(
      task, worker.attempt, TaskState::kWorkerLost,
      executor::ErrorOutcome(
          absl::StatusCode::kAborted,
          absl::StrCat(cause, " while running the task (attempt ",
                       worker.attempt, " of ", task->spec().max_attempts,
                       ")")));
}

void Supervisor::RespawnMissing(absl::Time now) {
  if (now < respawn_at_) return;
  while (static_cast<int>(workers_.size()) < config_.workers) {
    if (absl::Status status = Spawn(); !status.ok()) {
      std::fprintf(stderr, "remex-server: %s\n",
                   std::string(status.message()).c_str());
      backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
      respawn_at_ = now + backoff_;
      return;
    }
  }
}

void Supervisor::EraseRetired() {
  workers_.erase(std::remove_if(workers_.begin(), workers_.end(),
                                [](const std::unique_ptr<Worker>& worker) {
                                  return worker->retired;
                                }),
                 workers_.end());
}

void Supervisor::Publish() {
  std::vector<pid_t> pids;
  int busy = 0;
  for (const auto& worker : workers_) {
    if (worker->retired) continue;
    pids.push_back(worker->pid);
    if (worker->task != nullptr) ++busy;
  }
  absl::MutexLock lock(&pool_.mu_);
  pool_.pids_ = std::move(pids);
  pool_.busy_ = busy;
  pool_.restarts_ = restarts_;
}

}  // namespace internal

executor::PoolFactory ProcessPoolFactory(WorkerCommand command) {
  return [command](const executor::PoolConfig& config,
                   executor::TaskRunner& runner)
             -> absl::StatusOr<std::unique_ptr<executor::Pool>> {
    absl::StatusOr<std::unique_ptr<ProcessPool>> pool =
        ProcessPool::Create(config, runner, command);
    if (!pool.ok()) return pool.status();
    return std::unique_ptr<executor::Pool>(std::move(*pool));
  };
}

ProcessPool::ProcessPool(executor::PoolConfig config,
                         executor::TaskRunner& runner, WorkerCommand command)
    : config_(std::move(config)),
      runner_(runner),
      command_(std::move(command)),
      supervisor_(std::make_unique<internal::Supervisor>(*this)) {}

absl::StatusOr<std::unique_ptr<ProcessPool>> ProcessPool::Create(
    executor::PoolConfig config, executor::TaskRunner& runner,
    WorkerCommand command) {
  std::unique_ptr<ProcessPool> pool(
      new ProcessPool(std::move(config), runner, std::move(command)));
  // The supervisor thread spawns the workers: PR_SET_PDEATHSIG ties them to
  // the thread that started them, which lives as long as the pool.
  pool->thread_ = std::thread([raw = pool.get()] { raw->supervisor_->Loop(); });
  const absl::Status started = pool->supervisor_->AwaitStartup(
      absl::Now() + pool->command_.startup_timeout);
  if (!started.ok()) return started;  // ~ProcessPool stops the rest.
  return pool;
}

ProcessPool::~ProcessPool() { Shutdown(); }

absl::Status ProcessPool::Enqueue(std::shared_ptr<executor::Task> task) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::FailedPreconditionError(
          absl::StrCat("pool '", config_.name, "' is shut down"));
    }
    if (absl::Status status = queue_.Push(std::move(task)); !status.ok()) {
      return status;
    }
  }
  supervisor_->Notify();
  return absl::OkStatus();
}

bool ProcessPool::RemoveQueued(const executor::Task& task) {
  absl::MutexLock lock(&mu_);
  return queue_.Remove(task);
}

std::vector<std::shared_ptr<executor::Task>> ProcessPool::TakeAllQueued() {
  absl::MutexLock lock(&mu_);
  return queue_.TakeAll();
}

executor::PoolStats ProcessPool::Stats() const {
  absl::MutexLock lock(&mu_);
  return executor::PoolStats{.name = config_.name,
                             .kind = config_.kind,
                             .workers = static_cast<int>(pids_.size()),
                             .busy = busy_,
                             .queued = queue_.size(),
                             .max_queue = config_.max_queue,
                             .worker_restarts = restarts_};
}

std::vector<pid_t> ProcessPool::WorkerPids() const {
  absl::MutexLock lock(&mu_);
  return pids_;
}

void ProcessPool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  supervisor_->Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace remex::process
