#include "server/process/supervisor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_code.h"
#include "server/process/process_pool.h"
#include "server/process/spawn.h"
#include "server/process/worker_process.h"

namespace remex::process::internal {
namespace {

namespace wire = ::remex::worker::v1;
using executor::Task;
using executor::TaskState;

// Respawn delays after workers that die before they are ready (a broken
// binary or plugin), so that they do not spin.
constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
// Recycling is routine (max_tasks_per_worker): at most one line a period
// for each pool, with the count of the others.
constexpr absl::Duration kRecycleLogPeriod = absl::Seconds(10);

// "SIGSEGV" for a wait status that a signal ended, else "".
std::string TermSignalName(int status) {
  if (!WIFSIGNALED(status)) return "";
  const char* abbrev = sigabbrev_np(WTERMSIG(status));
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev)
                           : absl::StrCat(WTERMSIG(status));
}

}  // namespace

RunEnd RunEndFromResult(const wire::Result& result) {
  if (result.code() != 0) {
    return {TaskState::kFailed,
            executor::ErrorOutcome(common::CodeFromNumber(result.code()),
                                   result.message())};
  }
  auto produced = std::make_shared<executor::TaskOutcome>();
  produced->result = executor::Json::parse(result.result_json(), nullptr,
                                           /*allow_exceptions=*/false);
  produced->output = result.output();
  if (produced->result.is_discarded()) {
    return {TaskState::kFailed,
            executor::ErrorOutcome(absl::StatusCode::kInternal,
                                   "the worker sent an unparsable result")};
  }
  return {TaskState::kSucceeded, std::move(produced)};
}

Wakeup::Wakeup() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Wakeup::~Wakeup() { close(fd_); }

void Wakeup::Notify() const {
  const uint64_t one = 1;
  (void)!write(fd_, &one, sizeof(one));
}

void Wakeup::Drain() const {
  uint64_t count = 0;
  (void)!read(fd_, &count, sizeof(count));
}

Supervisor::Supervisor(ProcessPool& pool)
    : pool_(pool),
      config_(pool.config_),
      wakeup_(std::make_shared<Wakeup>()),
      environment_(ScrubbedEnvironment()),
      recycle_log_(kRecycleLogPeriod) {}

absl::Status Supervisor::AwaitStartup(absl::Time deadline) {
  if (!startup_done_.WaitForNotificationWithDeadline(deadline)) {
    return absl::UnavailableError(
        absl::StrCat("pool '", config_.name, "': workers not ready within ",
                     absl::FormatDuration(pool_.command_.startup_timeout)));
  }
  return startup_status_;
}

bool Supervisor::Stopping() const {
  absl::MutexLock lock(&pool_.mu_);
  return pool_.stopping_;
}

void Supervisor::Loop() {
  for (int i = 0; i < config_.workers; ++i) {
    if (absl::Status status = Spawn(SpawnReason::kStart); !status.ok()) {
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

absl::Status Supervisor::Spawn(SpawnReason reason) {
  absl::StatusOr<WorkerChild> child =
      StartWorker(pool_.command_, environment_, config_.name);
  if (!child.ok()) return child.status();
  // The first workers are in the server's `start` line, and replacements of
  // recycled ones in the rate-limited `worker_recycled` lines: only the
  // replacement of a worker that died or was killed is news.
  const log::Level level = reason == SpawnReason::kReplacement
                               ? log::Level::kInfo
                               : log::Level::kDebug;
  if (log::Enabled(level)) {
    log::Write(level, "worker_started",
               absl::StrCat("pool '", config_.name, "': worker ", child->pid,
                            " started"),
               {{"pool", config_.name},
                {"pid", child->pid},
                {"reason", reason == SpawnReason::kStart     ? "start"
                           : reason == SpawnReason::kRecycle ? "recycle"
                                                             : "replacement"}});
  }
  auto worker = std::make_unique<Worker>();
  worker->pid = child->pid;
  worker->fd = child->channel;
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
  RunEnd end = RunEndFromResult(result);
  Publish();  // Stats are current when the task's callbacks run.
  // Discarded by the executor if the task was cancelled or timed out.
  pool_.runner_.CompleteRun(task, worker.attempt, end.state,
                            std::move(end.outcome));
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
  // killed first.
  const int status =
      EndWorker(worker.pid, ending != Ending::kDied || !why.empty());
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
  if (ending == Ending::kRecycled) ++recycled_unreplaced_;
  if (!worker.ready) {
    // Died before it could take a task: a broken binary, plugin or limit.
    backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
    respawn_at_ = absl::Now() + backoff_;
  }
  LogEnd(worker, ending, status, why, reason);
  if (!worker.ready) {
    if (!startup_done_.HasBeenNotified()) {
      FailStartup(absl::UnavailableError(
          absl::StrCat("pool '", config_.name, "': ", why,
                       " before it was ready (see the server's stderr)")));
    }
  }
  Publish();  // Stats are current when the task's callbacks run.
  if (worker.task != nullptr) SettleLostTask(worker, why);
}

void Supervisor::LogEnd(const Worker& worker, Ending ending, int status,
                        const std::string& why, const std::string& reason) {
  const std::string task_id = worker.task != nullptr ? worker.task->id() : "";
  const std::string prefix =
      absl::StrCat("pool '", config_.name, "': worker ", worker.pid, " ");
  if (ending == Ending::kRecycled) {
    int64_t suppressed = 0;
    if (!recycle_log_.Allow(suppressed)) return;
    log::Info("worker_recycled",
              absl::StrCat(prefix, "recycled after ", worker.tasks_run,
                           " tasks (max_tasks_per_worker)"),
              {{"pool", config_.name},
               {"pid", worker.pid},
               {"tasks_run", worker.tasks_run},
               {"suppressed", suppressed}});
    return;
  }
  if (ending == Ending::kKilledAfterCancel) {
    log::Info("worker_killed",
              absl::StrCat(prefix, "killed: its task ", task_id,
                           " did not stop within the cancel grace (",
                           absl::FormatDuration(config_.cancel_grace),
                           ") after its ", reason),
              {{"pool", config_.name},
               {"pid", worker.pid},
               {"task", task_id},
               {"attempt", worker.attempt},
               {"reason", reason},
               {"cancel_grace", config_.cancel_grace}});
    return;
  }
  // Died on its own (or sent garbage and was killed): the runbook of
  // RemexWorkersCrashLooping sends operators here for the signal or code.
  std::vector<log::Field> fields = {{"pool", config_.name},
                                    {"pid", worker.pid}};
  const std::string signal = TermSignalName(status);
  if (!signal.empty()) {
    fields.emplace_back("signal", signal);
  } else if (WIFEXITED(status)) {
    fields.emplace_back("exit_code", WEXITSTATUS(status));
  }
  if (!task_id.empty()) {
    fields.emplace_back("task", task_id);
    fields.emplace_back("attempt", worker.attempt);
  }
  fields.emplace_back("ready", worker.ready);
  fields.emplace_back("tasks_run", worker.tasks_run);
  std::string message = absl::StrCat("pool '", config_.name, "': ", why,
                                     " (pid ", worker.pid, ")");
  if (!task_id.empty()) {
    absl::StrAppend(&message, " while running task ", task_id, " (attempt ",
                    worker.attempt, ")");
  }
  if (!worker.ready) {
    fields.emplace_back("next_start_in", backoff_);
    absl::StrAppend(&message, " before it was ready; next start in ",
                    absl::FormatDuration(backoff_));
  }
  log::Warn("worker_died", message, fields);
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
    const SpawnReason reason = recycled_unreplaced_ > 0
                                   ? SpawnReason::kRecycle
                                   : SpawnReason::kReplacement;
    if (absl::Status status = Spawn(reason); !status.ok()) {
      backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
      respawn_at_ = now + backoff_;
      log::Error("worker_start_failed", status.message(),
                 {{"pool", config_.name}, {"next_start_in", backoff_}});
      return;
    }
    if (recycled_unreplaced_ > 0) --recycled_unreplaced_;
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

}  // namespace remex::process::internal
