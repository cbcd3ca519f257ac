#include "server/executor/executor.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/ids.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace remex::executor {
namespace {

constexpr char kDefaultPoolName[] = "default";

// With replicas sharing a store: how much work a replica queues beyond
// what it runs (see FreeSlotsOf), and at most how many tasks.
constexpr absl::Duration kWorkAhead = absl::Milliseconds(50);
constexpr int64_t kMaxAhead = 1000;

// Runs `start` with a callback and waits for its answer: the blocking calls
// on an executor with a durable store.
template <typename Answer, typename Start>
Answer WaitForAnswer(Start start) {
  absl::Notification answered;
  std::optional<Answer> answer;
  start([&](Answer value) {
    answer.emplace(std::move(value));
    answered.Notify();
  });
  answered.WaitForNotification();
  return *std::move(answer);
}

// What a caller hears of a task it does not see, or that is not there.
absl::Status UnknownTask(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("unknown task id ", common::Quote(id)));
}

}  // namespace

std::shared_ptr<const TaskOutcome> RunFunction(
    const FunctionSpec& function, const std::string& task_id,
    const TaskSpec& spec, const CancellationToken& cancellation) {
  TaskContext context(task_id, spec, cancellation);
  absl::Status status;
  try {
    status = function.body(context);
  } catch (const std::exception& e) {
    status = absl::UnknownError(absl::StrCat("function threw: ", e.what()));
  } catch (...) {
    status = absl::UnknownError("function threw a non-standard exception");
  }
  if (status.ok() && !JsonIsValidUtf8(context.mutable_result())) {
    status = absl::InternalError(
        "the function's result holds a string that is not valid UTF-8 (put "
        "raw bytes in the output instead)");
  }
  if (!status.ok()) {
    return ErrorOutcome(status.code(), common::ToValidUtf8(status.message()));
  }
  if (context.mutable_result().is_null() && context.mutable_output().empty()) {
    // Nothing to keep: every such task shares one outcome, so that a
    // retained no-op task costs no outcome of its own.
    static const auto* const kEmpty =
        new std::shared_ptr<const TaskOutcome>(std::make_shared<TaskOutcome>());
    return *kEmpty;
  }
  auto outcome = std::make_shared<TaskOutcome>();
  outcome->result = std::move(context.mutable_result());
  outcome->output = std::move(context.mutable_output());
  return outcome;
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(
    ExecutorOptions options, const FunctionRegistry& registry) {
  if (options.pools.empty()) {
    return absl::InvalidArgumentError("the executor needs at least one pool");
  }
  std::unique_ptr<Executor> executor(
      new Executor(std::move(options), registry));
  REMEX_RETURN_IF_ERROR(executor->StartPools());
  executor->AddObserverSeries();
  if (executor->store_ != nullptr) {
    REMEX_RETURN_IF_ERROR(executor->Recover());
    executor->store_->Attach(static_cast<StoreRunner*>(executor.get()));
  }
  executor->ScheduleRetentionSweep();
  return executor;
}

Executor::Executor(ExecutorOptions options, const FunctionRegistry& registry)
    : options_(std::move(options)),
      registry_(registry),
      store_(options_.store),
      memory_(options_.memory_budget),
      table_(options_.retention) {}

absl::Status Executor::StartPools() {
  for (const PoolConfig& config : options_.pools) {
    if (pools_.contains(config.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("pool '", config.name, "' is defined twice"));
    }
    REMEX_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool,
                           CreatePool(config, *this, options_.pool_factories));
    loads_.emplace(pool.get(), std::make_unique<PoolLoad>());
    pools_.emplace(config.name, std::move(pool));
  }
  default_pool_ = pools_.contains(kDefaultPoolName)
                      ? kDefaultPoolName
                      : options_.pools.front().name;
  return absl::OkStatus();
}

void Executor::AddObserverSeries() {
  TaskObserver* observer = options_.observer;
  if (observer == nullptr) return;
  for (const PoolConfig& config : options_.pools) {
    const Pool* pool = pools_.at(config.name).get();
    for (const FunctionSpec* function : registry_.List()) {
      std::unique_ptr<TaskSeries> series =
          observer->AddSeries(config.name, function->name);
      if (series != nullptr) {
        series_.emplace(std::make_pair(pool, function), std::move(series));
      }
    }
  }
}

Executor::~Executor() {
  // No claim or signal reaches this executor once it returns.
  if (store_ != nullptr) store_->Attach(nullptr);
  {
    // Store callbacks still to come do nothing (and wait for none running).
    absl::MutexLock lock(&lifeline_->mu);
    lifeline_->alive = false;
  }
  StartDrain();
  // Tokens first, so that cooperative functions return and the joins below
  // do not wait for them; then once more for anything that raced the drain.
  CancelAll("the server shut down");
  for (auto& [name, pool] : pools_) pool->Shutdown();
  CancelAll("the server shut down");
}

absl::StatusOr<TaskSnapshot> Executor::Submit(TaskSpec spec,
                                              const Caller& caller,
                                              DoneListener* listener,
                                              uint64_t tag) {
  if (store_ != nullptr) {
    return WaitForAnswer<absl::StatusOr<TaskSnapshot>>([&](SubmitDone done) {
      SubmitDurably(std::move(spec), caller, listener, tag, std::move(done));
    });
  }
  const Pool* pool = nullptr;
  absl::StatusOr<TaskSnapshot> task =
      Accept(std::move(spec), caller, listener, tag, pool);
  if (!task.ok()) ReportRejected(pool, task.status());
  return task;
}

void Executor::ReportRejected(const Pool* pool, const absl::Status& status) {
  if (options_.observer != nullptr) {
    options_.observer->OnRejected(pool == nullptr ? "" : pool->config().name,
                                  RejectReasonOf(status));
  }
}

absl::StatusOr<TaskSnapshot> Executor::Accept(TaskSpec spec,
                                              const Caller& caller,
                                              DoneListener* listener,
                                              uint64_t tag,
                                              const Pool*& resolved_pool) {
  REMEX_ASSIGN_OR_RETURN(const Admission admission,
                         Admit(spec, caller, resolved_pool));
  // Numbered here, just before the table shows it: a List racing this
  // Submit may page past the number before the task is in the table, and
  // then not show it, as it would not show a task submitted a moment later.
  const uint64_t list_position =
      last_list_position_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::shared_ptr<Task> task =
      MakeTask(common::NewTaskId(), list_position, std::move(spec), absl::Now(),
               admission, listener, tag);
  active_tasks_.fetch_add(1, std::memory_order_relaxed);
  return Launch(task, *admission.pool);
}

absl::StatusOr<Executor::Admission> Executor::Admit(
    TaskSpec& spec, const Caller& caller, const Pool*& resolved_pool) {
  const FunctionSpec* function = registry_.Find(spec.function);
  if (function == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown function ",
                                            common::Quote(spec.function),
                                            " (see ListFunctions)"));
  }
  REMEX_ASSIGN_OR_RETURN(Pool * pool, ResolvePool(spec, *function));
  resolved_pool = pool;
  // After the lookups, so that a refusal is counted against its pool.
  if (draining_.load(std::memory_order_relaxed)) {
    return absl::UnavailableError("the server is draining; submit elsewhere");
  }
  spec.pool = pool->config().name;
  REMEX_RETURN_IF_ERROR(CheckSpec(spec, *function));
  if (spec.run_timeout == absl::InfiniteDuration()) {
    spec.run_timeout = function->run_timeout;
  }
  spec.owner = std::string(caller.name);
  // Last, so that no refusal above leaves bytes or a slot taken.
  const size_t bytes = Task::HeldBytes(spec);
  REMEX_RETURN_IF_ERROR(AdmitBytes(bytes));
  if (absl::Status status = TakeOwnerSlot(caller); !status.ok()) {
    memory_.Release(bytes, /*running=*/false);
    return status;
  }
  return Admission{pool, function, bytes};
}

absl::Status Executor::AdmitBytes(size_t bytes) {
  if (memory_.TryAdmit(bytes, table_.retained_bytes())) {
    return absl::OkStatus();
  }
  // Finished tasks give way to new work.
  table_.EvictWhile([&] {
    return memory_.live() + table_.retained_bytes() + bytes > memory_.limit();
  });
  if (memory_.TryAdmit(bytes, table_.retained_bytes())) {
    return absl::OkStatus();
  }
  memory_.CountRejected();
  constexpr double kMiB = 1 << 20;
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the server's memory budget is full: %.1f MiB of %.1f MiB are held by "
      "queued and running tasks, and this task needs %.1f MiB; retry later, "
      "or submit less at once",
      static_cast<double>(memory_.live()) / kMiB,
      static_cast<double>(memory_.limit()) / kMiB,
      static_cast<double>(bytes) / kMiB));
}

void Executor::EvictOverBudget() {
  table_.EvictWhile([&] {
    return memory_.live() + table_.retained_bytes() > memory_.limit();
  });
}

MemoryUse Executor::memory_use() const {
  return MemoryUse{.limit = memory_.limit(),
                   .queued = memory_.queued(),
                   .running = memory_.running(),
                   .retained = table_.retained_bytes(),
                   .rejected = memory_.rejected()};
}

std::shared_ptr<Task> Executor::MakeTask(std::string id, uint64_t list_position,
                                         TaskSpec spec, absl::Time created_at,
                                         const Admission& admission,
                                         DoneListener* listener, uint64_t tag) {
  auto task = std::make_shared<Task>(std::move(id), list_position,
                                     std::move(spec), created_at);
  if (auto it =
          series_.find(std::make_pair(admission.pool, admission.function));
      it != series_.end()) {
    task->run.series = it->second.get();
  }
  if (listener != nullptr) task->SetDoneListener(listener, tag);
  return task;
}

absl::StatusOr<TaskSnapshot> Executor::Launch(const std::shared_ptr<Task>& task,
                                              Pool& pool) {
  table_.Insert(task);
  TaskSnapshot snapshot = task->Snapshot();
  // Armed before the task can start, so that starting disarms it.
  ArmQueueTimeout(task);
  if (absl::Status status = pool.Enqueue(task); !status.ok()) {
    return Refuse(task, std::move(status));
  }
  if (task->run.series != nullptr) task->run.series->OnSubmitted();
  return snapshot;
}

void Executor::SubmitDurably(TaskSpec spec, const Caller& caller,
                             DoneListener* listener, uint64_t tag,
                             SubmitDone done) {
  const Pool* pool = nullptr;
  absl::StatusOr<Admission> admission = Admit(spec, caller, pool);
  if (!admission.ok()) {
    ReportRejected(pool, admission.status());
    return done(admission.status());
  }
  // Counted from now: a drain waits for the commit too.
  active_tasks_.fetch_add(1, std::memory_order_relaxed);
  TaskSnapshot row;
  row.id = common::NewTaskId();
  row.spec = std::make_shared<const TaskSpec>(std::move(spec));
  row.created_at = absl::Now();
  TaskSnapshot accepted = row;
  // Kept here when the pool has room, or when no other replica could run
  // it; else left to whichever replica has room first.
  const bool run_here = !store_->Shared() || FreeSlotsOf(*admission->pool) > 0;
  std::atomic<int64_t>& committing = loads_.at(admission->pool)->committing;
  if (run_here) committing.fetch_add(1, std::memory_order_relaxed);
  // Another replica may claim, run and end the task as soon as it is
  // committed, before the callback below runs: its end signal must find
  // the listener waiting already.
  if (!run_here && listener != nullptr) {
    WaitElsewhere(accepted.id, [listener, tag](const TaskSnapshot& task) {
      listener->OnTaskDone(tag, task);
    });
  }
  store_->Insert(
      std::move(row), run_here,
      [this, lifeline = lifeline_, accepted = std::move(accepted), run_here,
       admission = *admission, listener, tag, &committing,
       done = std::move(done)](absl::StatusOr<uint64_t> position) mutable {
        const absl::Time committed = absl::Now();
        absl::ReaderMutexLock lock(&lifeline->mu);
        if (!lifeline->alive) {
          return done(absl::UnavailableError("the server is shutting down"));
        }
        // After the check: `committing` lives in the executor.
        if (run_here) committing.fetch_sub(1, std::memory_order_relaxed);
        const std::shared_ptr<const TaskSpec>& spec = accepted.spec;
        if (!position.ok() || !run_here) {
          memory_.Release(admission.bytes, /*running=*/false);
          ReleaseOwnerSlot(spec->owner);
          EndActive();
        }
        if (!position.ok()) {
          if (!run_here) ForgetWaitedElsewhere(accepted.id);
          ReportRejected(admission.pool, position.status());
          return done(position.status());
        }
        if (!run_here) {
          accepted.list_position = *position;
          return done(std::move(accepted));
        }
        std::string id = accepted.id;
        const absl::Time created_at = accepted.created_at;
        std::shared_ptr<Task> task =
            MakeTask(std::move(id), *position, TaskSpec(*spec), created_at,
                     admission, listener, tag);
        absl::StatusOr<TaskSnapshot> launched = Launch(task, *admission.pool);
        if (launched.ok()) {
          ReportClaimLag(committed);
        } else {
          ReportRejected(admission.pool, launched.status());
        }
        done(std::move(launched));
      });
}

void Executor::EndActive() {
  if (active_tasks_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    absl::MutexLock lock(&idle_mu_);
    idle_cv_.SignalAll();
  }
}

absl::StatusOr<TaskSnapshot> Executor::Refuse(const std::shared_ptr<Task>& task,
                                              absl::Status status) {
  DisarmTimer(task->run.timer);
  // Ended here, so that nobody else can end it too. Only a List can have
  // shown it meanwhile; if a Cancel of that id ended it first, it was
  // counted and reported as any other task: it stays, accepted and ended.
  std::optional<Task::Completion> refused = task->Finish(
      TaskState::kCancelled,
      ErrorOutcome(status.code(), std::string(status.message())), absl::Now());
  if (!refused.has_value()) return task->Snapshot();
  table_.Erase(task->id());
  if (store_ != nullptr) {
    store_->Erase(task->id(), Visibility{}, [](absl::Status) {});
  }
  memory_.Release(Task::HeldBytes(task->spec()), /*running=*/false);
  EndActive();
  ReleaseOwnerSlot(task->spec().owner);
  refused->listener = nullptr;  // the submitter learns it from `status`
  refused->RunCallbacks();      // watchers that found it by List
  return status;
}

absl::StatusOr<Pool*> Executor::ResolvePool(
    const TaskSpec& spec, const FunctionSpec& function) const {
  const std::string& name =
      spec.pool.empty() ? DefaultPoolOf(function) : spec.pool;
  auto it = pools_.find(name);
  if (it != pools_.end()) return it->second.get();
  std::vector<std::string> names;
  for (const PoolConfig& config : options_.pools) names.push_back(config.name);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown pool ", common::Quote(name),
                   " (pools: ", absl::StrJoin(names, ", "), ")"));
}

absl::Status Executor::CheckSpec(const TaskSpec& spec,
                                 const FunctionSpec& function) const {
  if (spec.queue_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("queue_timeout must not be negative");
  }
  if (spec.run_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("run_timeout must not be negative");
  }
  if (spec.ttl < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ttl must not be negative");
  }
  if (spec.max_attempts < 1 || spec.max_attempts > kMaxAttempts) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be between 1 and ", kMaxAttempts,
                     ", got ", spec.max_attempts));
  }
  if (!function.check_args) return absl::OkStatus();
  // User code on the submitting thread: nothing it throws may escape.
  try {
    return function.check_args(spec.args, spec.input);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.function, ": the args check failed: ", e.what()));
  } catch (...) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.function, ": the args check failed"));
  }
}

const std::string& Executor::DefaultPoolOf(const FunctionSpec& function) const {
  return function.default_pool.empty() ? default_pool_ : function.default_pool;
}

void Executor::ArmQueueTimeout(const std::shared_ptr<Task>& task) {
  const absl::Duration timeout = task->spec().queue_timeout;
  if (timeout == absl::InfiniteDuration()) return;
  // From the task's creation: a task read back from a store has waited
  // already.
  task->run.timer = ArmTimeout(
      task, task->created_at() + timeout - absl::Now(), TaskState::kQueued,
      /*attempt=*/0,
      absl::StrCat("queue_timeout: not started within ",
                   absl::FormatDuration(timeout)));
}

void Executor::ArmRunTimeout(const std::shared_ptr<Task>& task) {
  const absl::Duration timeout = task->spec().run_timeout;
  if (timeout == absl::InfiniteDuration()) return;
  task->run.timer =
      ArmTimeout(task, timeout, TaskState::kRunning, task->attempt(),
                 absl::StrCat("run_timeout: still running after ",
                              absl::FormatDuration(timeout)));
}

TimerQueue::TimerId Executor::ArmTimeout(const std::shared_ptr<Task>& task,
                                         absl::Duration timeout,
                                         TaskState only_from,
                                         int32_t only_attempt,
                                         std::string message) {
  std::weak_ptr<Task> weak = task;
  return timers_.Schedule(
      absl::Now() + timeout,
      [this, weak, only_from, only_attempt, message = std::move(message)] {
        std::shared_ptr<Task> task = weak.lock();
        if (task == nullptr) return;
        FinishTask(task, TaskState::kTimedOut,
                   ErrorOutcome(absl::StatusCode::kDeadlineExceeded, message),
                   only_from, only_attempt);
      });
}

void Executor::DisarmTimer(std::atomic<uint64_t>& timer) {
  if (const uint64_t id = timer.exchange(0)) timers_.Cancel(id);
}

void Executor::Run(const std::shared_ptr<Task>& task) {
  if (!BeginRun(task)) return;
  const int32_t attempt = task->attempt();
  const FunctionSpec* function = registry_.Find(task->spec().function);
  std::shared_ptr<const TaskOutcome> outcome =
      RunFunction(*function, task->id(), task->spec(), task->cancellation());
  const bool succeeded = outcome->error.code == absl::StatusCode::kOk;
  CompleteRun(task, attempt,
              succeeded ? TaskState::kSucceeded : TaskState::kFailed,
              std::move(outcome));
}

bool Executor::BeginRun(const std::shared_ptr<Task>& task) {
  const absl::Time started = absl::Now();
  if (!task->MarkRunning(started)) return false;  // ended while queued
  memory_.MoveToRunning(Task::HeldBytes(task->spec()));
  if (task->run.series != nullptr && task->attempt() == 1) {
    task->run.series->OnStarted(started - task->created_at());
  }
  DisarmTimer(task->run.timer);
  ArmRunTimeout(task);
  RecordState(*task);
  return true;
}

void Executor::RecordState(const Task& task) {
  if (store_ != nullptr) {
    store_->Update(task.FullSnapshot(), absl::InfiniteFuture(),
                   /*release=*/false, nullptr);
  }
}

void Executor::CompleteRun(const std::shared_ptr<Task>& task, int32_t attempt,
                           TaskState state,
                           std::shared_ptr<const TaskOutcome> outcome) {
  FinishTask(task, state, std::move(outcome), TaskState::kRunning, attempt);
}

bool Executor::RetryRun(const std::shared_ptr<Task>& task, int32_t attempt) {
  if (attempt >= task->spec().max_attempts) return false;
  if (!task->Requeue(attempt)) return false;
  memory_.MoveToQueued(Task::HeldBytes(task->spec()));
  // A timer that escapes this finds the task QUEUED and does nothing.
  DisarmTimer(task->run.timer);
  RecordState(*task);
  return true;
}

bool Executor::FinishTask(const std::shared_ptr<Task>& task, TaskState state,
                          std::shared_ptr<const TaskOutcome> outcome,
                          std::optional<TaskState> only_from,
                          int32_t only_attempt, bool persist) {
  const absl::Time now = absl::Now();
  std::optional<Task::Completion> completion =
      task->Finish(state, outcome, now, only_from, only_attempt,
                   /*publish=*/store_ == nullptr);
  if (!completion.has_value()) return false;
  const size_t held = Task::HeldBytes(task->spec());
  memory_.Release(held, completion->previous_state == TaskState::kRunning);
  if (completion->previous_state == TaskState::kQueued) {
    pools_.at(task->spec().pool)->RemoveQueued(*task);
  } else if (store_ != nullptr) {
    Pool& pool = *pools_.at(task->spec().pool);
    if (completion->started_at != absl::InfinitePast()) {
      // Races between ends lose a sample at worst.
      std::atomic<int64_t>& average = loads_.at(&pool)->run_nanos;
      const int64_t sample = std::max<int64_t>(
          1, absl::ToInt64Nanoseconds(now - completion->started_at));
      const int64_t before = average.load(std::memory_order_relaxed);
      average.store(before == 0 ? sample : before + (sample - before) / 16,
                    std::memory_order_relaxed);
    }
    store_->OnSlotFreed(pool.config().name);
  }
  DisarmTimer(task->run.timer);
  const absl::Duration ttl = task->spec().ttl > absl::ZeroDuration()
                                 ? task->spec().ttl
                                 : options_.default_ttl;
  table_.Retain(task, now + ttl, held + outcome->ApproximateBytes());
  EvictOverBudget();
  ReleaseOwnerSlot(task->spec().owner);
  // Before the callbacks, so that whoever awaits the task finds it counted.
  if (task->run.series != nullptr) {
    task->run.series->OnFinished(
        state, completion->started_at == absl::InfinitePast()
                   ? std::nullopt
                   : std::make_optional(completion->finished_at -
                                        completion->started_at));
  }
  if (store_ == nullptr || !persist) {
    EndActive();
    completion->RunCallbacks();  // none when not published
    return true;
  }
  // The end itself: callers are shown it (Snapshot) once it is committed.
  store_->Update(task->FullSnapshot(), now + ttl, /*release=*/false,
                 [this, lifeline = lifeline_, task] {
                   absl::ReaderMutexLock lock(&lifeline->mu);
                   if (!lifeline->alive) return;
                   task->Publish().RunCallbacks();
                   EndActive();
                 });
  return true;
}

absl::Status Executor::TakeOwnerSlot(const Caller& caller) {
  if (caller.name.empty()) return absl::OkStatus();
  absl::MutexLock lock(&owners_mu_);
  int64_t& active = active_by_owner_[caller.name];
  if (caller.max_active_tasks > 0 && active >= caller.max_active_tasks) {
    return absl::ResourceExhaustedError(absl::StrCat(
        common::Quote(caller.name), " has ", active,
        " active tasks, its max_active_tasks: wait for some to end"));
  }
  ++active;
  return absl::OkStatus();
}

void Executor::ReleaseOwnerSlot(const std::string& owner) {
  if (owner.empty()) return;
  absl::MutexLock lock(&owners_mu_);
  auto it = active_by_owner_.find(owner);
  if (it != active_by_owner_.end() && --it->second <= 0) {
    active_by_owner_.erase(it);
  }
}

absl::StatusOr<std::shared_ptr<Task>> Executor::FindTask(
    const std::string& id, const Caller& caller) const {
  std::shared_ptr<Task> task = table_.Find(id);
  if (task == nullptr || !caller.Sees(task->spec())) return UnknownTask(id);
  return task;
}

absl::StatusOr<TaskSnapshot> Executor::Get(const std::string& id,
                                           const Caller& caller) const {
  if (store_ != nullptr) {
    return WaitForAnswer<absl::StatusOr<TaskSnapshot>>(
        [&](TaskDone done) { GetAsync(id, caller, std::move(done)); });
  }
  REMEX_ASSIGN_OR_RETURN(std::shared_ptr<Task> task, FindTask(id, caller));
  return task->Snapshot();
}

bool Executor::CancelTask(const std::shared_ptr<Task>& task,
                          const std::string& reason) {
  if (IsTerminal(task->RequestCancel())) return false;
  return FinishTask(task, TaskState::kCancelled,
                    ErrorOutcome(absl::StatusCode::kCancelled, reason));
}

absl::StatusOr<TaskSnapshot> Executor::Cancel(const std::string& id,
                                              const Caller& caller) {
  if (store_ != nullptr) {
    return WaitForAnswer<absl::StatusOr<TaskSnapshot>>(
        [&](TaskDone done) { CancelAsync(id, caller, std::move(done)); });
  }
  REMEX_ASSIGN_OR_RETURN(std::shared_ptr<Task> task, FindTask(id, caller));
  CancelTask(task, "cancelled by request");
  return task->Snapshot();
}

absl::Status Executor::Delete(const std::string& id, const Caller& caller) {
  if (store_ != nullptr) {
    return WaitForAnswer<absl::Status>(
        [&](StatusDone done) { DeleteAsync(id, caller, std::move(done)); });
  }
  REMEX_ASSIGN_OR_RETURN(std::shared_ptr<Task> task, FindTask(id, caller));
  CancelTask(task, "deleted by request");
  table_.Erase(id);
  return absl::OkStatus();
}

absl::StatusOr<ListPage> Executor::List(const ListQuery& query,
                                        const Caller& caller) const {
  if (store_ != nullptr) {
    return WaitForAnswer<absl::StatusOr<ListPage>>(
        [&](ListDone done) { ListAsync(query, caller, std::move(done)); });
  }
  uint64_t after = 0;
  if (!query.page_token.empty()) {
    const std::optional<uint64_t> position =
        ParseListPageToken(query.page_token);
    // A position past the last one numbered is no token this server made
    // (since it started: tokens do not outlive a restart).
    if (!position.has_value() ||
        *position > last_list_position_.load(std::memory_order_relaxed)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "page_token ", common::Quote(query.page_token),
          " was not made by this server: pass the next_page_token of the "
          "previous page, or none for the first page"));
    }
    after = *position;
  }
  const size_t page_size = static_cast<size_t>(
      query.page_size <= 0
          ? ListQuery::kDefaultPageSize
          : std::min(query.page_size, ListQuery::kMaxPageSize));
  // One more than a page tells whether there is a next page.
  TaskTable::Matches matches = table_.FirstMatchesAfter(
      after, page_size + 1, [&query, &caller](const Task& task) {
        const TaskSpec& spec = task.spec();
        return caller.Sees(spec) &&
               (query.function.empty() || spec.function == query.function) &&
               (query.pool.empty() || spec.pool == query.pool) &&
               (!query.state.has_value() || task.state() == *query.state);
      });
  ListPage page;
  const size_t shown = std::min(page_size, matches.tasks.size());
  page.tasks.reserve(shown);
  for (size_t i = 0; i < shown; ++i) {
    page.tasks.push_back(matches.tasks[i]->Snapshot());
  }
  if (matches.tasks.size() > shown) {
    page.next_page_token = ListPageToken(page.tasks.back().list_position);
  } else if (matches.resume_after.has_value()) {
    page.next_page_token = ListPageToken(*matches.resume_after);
  }
  return page;
}

absl::Status Executor::OnDone(const std::string& id, DoneCallback callback,
                              const Caller& caller) {
  if (store_ != nullptr) {
    return WaitForAnswer<absl::Status>([&](StatusDone done) {
      OnDoneAsync(id, std::move(callback), caller, std::move(done));
    });
  }
  REMEX_ASSIGN_OR_RETURN(std::shared_ptr<Task> task, FindTask(id, caller));
  task->AddDoneCallback(std::move(callback));
  return absl::OkStatus();
}

std::vector<PoolStats> Executor::PoolStatistics() const {
  std::vector<PoolStats> stats;
  for (const PoolConfig& config : options_.pools) {
    stats.push_back(pools_.at(config.name)->Stats());
  }
  return stats;
}

void Executor::StartDrain() {
  draining_ = true;
  // Claims in progress end first: what they bring is handed back below.
  if (store_ != nullptr) store_->Attach(nullptr);
  for (auto& [name, pool] : pools_) {
    for (const std::shared_ptr<Task>& task : pool->TakeAllQueued()) {
      if (store_ == nullptr) {
        CancelTask(task, "the server is shutting down");
        continue;
      }
      // Handed back: QUEUED in the store, for another replica (or the
      // next start); this process forgets it.
      HandBack(*task);
      DisarmTimer(task->run.timer);
      table_.Erase(task->id());
      memory_.Release(Task::HeldBytes(task->spec()), /*running=*/false);
      ReleaseOwnerSlot(task->spec().owner);
      EndActive();
    }
  }
}

bool Executor::WaitUntilIdle(absl::Time deadline) {
  absl::MutexLock lock(&idle_mu_);
  while (active_tasks_.load() > 0) {
    if (idle_cv_.WaitWithDeadline(&idle_mu_, deadline)) {
      return active_tasks_.load() == 0;
    }
  }
  return true;
}

void Executor::CancelAll(const std::string& reason) {
  std::vector<std::shared_ptr<Task>> unfinished;
  table_.ForEach([&](const std::shared_ptr<Task>& task) {
    if (!IsTerminal(task->state())) unfinished.push_back(task);
  });
  for (const std::shared_ptr<Task>& task : unfinished) {
    if (store_ == nullptr) {
      CancelTask(task, reason);
      continue;
    }
    TaskSnapshot before = task->FullSnapshot();
    if (before.state == TaskState::kRunning &&
        before.attempt >= task->spec().max_attempts) {
      FinishTask(task, TaskState::kWorkerLost,
                 ErrorOutcome(absl::StatusCode::kAborted,
                              absl::StrCat("the server stopped while the task "
                                           "ran (attempt ",
                                           before.attempt, " of ",
                                           task->spec().max_attempts, ")")));
      continue;
    }
    // Stopped here, not ended: handed back to the store, QUEUED, for
    // another replica (its next start is attempt + 1). Only if it did not
    // end meanwhile.
    if (FinishTask(task, TaskState::kCancelled,
                   ErrorOutcome(absl::StatusCode::kCancelled, reason),
                   std::nullopt, 0, /*persist=*/false)) {
      before.state = TaskState::kQueued;
      store_->Update(std::move(before), absl::InfiniteFuture(),
                     /*release=*/true, nullptr);
    }
  }
}

void Executor::HandBack(const Task& task) {
  TaskSnapshot snapshot = task.FullSnapshot();
  snapshot.state = TaskState::kQueued;
  store_->Update(std::move(snapshot), absl::InfiniteFuture(),
                 /*release=*/true, nullptr);
}

void Executor::ScheduleRetentionSweep() {
  timers_.Schedule(absl::Now() + options_.retention_sweep_interval, [this] {
    table_.EvictExpired(absl::Now());
    ScheduleRetentionSweep();
  });
}

}  // namespace remex::executor

namespace remex::executor {

void Executor::SubmitAsync(TaskSpec spec, const Caller& caller,
                           DoneListener* listener, uint64_t tag,
                           SubmitDone done) {
  if (store_ != nullptr) {
    return SubmitDurably(std::move(spec), caller, listener, tag,
                         std::move(done));
  }
  done(Submit(std::move(spec), caller, listener, tag));
}

void Executor::GetAsync(const std::string& id, const Caller& caller,
                        TaskDone done) const {
  if (store_ == nullptr) return done(Get(id, caller));
  if (std::shared_ptr<Task> task = table_.Find(id); task != nullptr) {
    if (!caller.Sees(task->spec())) return done(UnknownTask(id));
    return done(task->Snapshot());
  }
  store_->Get(id, Visibility::Of(caller), std::move(done));
}

void Executor::CancelAsync(const std::string& id, const Caller& caller,
                           TaskDone done) {
  if (store_ == nullptr) return done(Cancel(id, caller));
  std::shared_ptr<Task> task = table_.Find(id);
  if (task == nullptr) {
    // Not held here: queued for any replica, held by another, or ended.
    return store_->RequestCancel(id, Visibility::Of(caller), std::move(done));
  }
  if (!caller.Sees(task->spec())) return done(UnknownTask(id));
  CancelTask(task, "cancelled by request");
  // Answered once the end is committed (at once if it was).
  task->AddDoneCallback(
      [done = std::make_shared<TaskDone>(std::move(done))](
          const TaskSnapshot& snapshot) { (*done)(snapshot); });
}

void Executor::DeleteAsync(const std::string& id, const Caller& caller,
                           StatusDone done) {
  if (store_ == nullptr) return done(Delete(id, caller));
  if (std::shared_ptr<Task> task = table_.Find(id); task != nullptr) {
    if (!caller.Sees(task->spec())) return done(UnknownTask(id));
    CancelTask(task, "deleted by request");
    table_.Erase(id);
    return store_->Erase(id, Visibility::Of(caller), std::move(done));
  }
  // Held elsewhere, maybe: stopped there first.
  store_->RequestCancel(
      id, Visibility::Of(caller),
      [this, lifeline = lifeline_, id, visibility = Visibility::Of(caller),
       done = std::move(done)](absl::StatusOr<TaskSnapshot> task) mutable {
        absl::ReaderMutexLock lock(&lifeline->mu);
        if (!lifeline->alive) {
          return done(absl::UnavailableError("the server is shutting down"));
        }
        if (!task.ok()) return done(task.status());
        store_->Erase(id, std::move(visibility), std::move(done));
      });
}

void Executor::ListAsync(ListQuery query, const Caller& caller,
                         ListDone done) const {
  if (store_ == nullptr) return done(List(query, caller));
  store_->List(std::move(query), Visibility::Of(caller), std::move(done));
}

void Executor::OnDoneAsync(const std::string& id, DoneCallback callback,
                           const Caller& caller, StatusDone registered) {
  if (std::shared_ptr<Task> task = table_.Find(id); task != nullptr) {
    if (!caller.Sees(task->spec())) return registered(UnknownTask(id));
    registered(absl::OkStatus());  // before the callback can run
    return task->AddDoneCallback(std::move(callback));
  }
  if (store_ == nullptr) return registered(UnknownTask(id));
  store_->Get(id, Visibility::Of(caller),
              [this, lifeline = lifeline_, callback = std::move(callback),
               registered = std::move(registered)](
                  absl::StatusOr<TaskSnapshot> task) mutable {
                absl::ReaderMutexLock lock(&lifeline->mu);
                if (!lifeline->alive) {
                  return registered(
                      absl::UnavailableError("the server is shutting down"));
                }
                if (!task.ok()) return registered(task.status());
                registered(absl::OkStatus());
                if (IsTerminal(task->state)) return callback(*task);
                // Held elsewhere, or by no replica yet: its end is signalled.
                // Looked up once more after the wait is in place, in case it
                // ended in between.
                WaitElsewhere(task->id, std::move(callback));
                CheckWaitedElsewhere({task->id});
              });
}

void Executor::WaitElsewhere(const std::string& id, DoneCallback callback) {
  absl::MutexLock lock(&elsewhere_mu_);
  waited_elsewhere_[id].push_back(std::move(callback));
  CountWaitedElsewhere();
}

void Executor::CountWaitedElsewhere() {
  const size_t waited = waited_elsewhere_.size();
  if (waited_elsewhere_count_.exchange(waited, std::memory_order_relaxed) ==
      0) {
    if (waited > 0) store_->ListenForEnds(true);
  } else if (waited == 0) {
    store_->ListenForEnds(false);
  }
}

void Executor::ForgetWaitedElsewhere(const std::string& id) {
  absl::MutexLock lock(&elsewhere_mu_);
  waited_elsewhere_.erase(id);
  CountWaitedElsewhere();
}

void Executor::CheckWaitedElsewhere(std::vector<std::string> ids) {
  for (std::string& id : ids) {
    store_->Get(
        std::move(id), Visibility{},
        [this, lifeline = lifeline_](absl::StatusOr<TaskSnapshot> task) {
          absl::ReaderMutexLock lock(&lifeline->mu);
          if (!lifeline->alive) return;
          if (task.ok() && IsTerminal(task->state)) {
            ResolveWaitedElsewhere(*task);
          }
        });
  }
}

void Executor::ResolveWaitedElsewhere(const TaskSnapshot& task) {
  std::vector<DoneCallback> callbacks;
  {
    absl::MutexLock lock(&elsewhere_mu_);
    auto it = waited_elsewhere_.find(task.id);
    if (it == waited_elsewhere_.end()) return;
    callbacks = std::move(it->second);
    waited_elsewhere_.erase(it);
    CountWaitedElsewhere();
  }
  for (DoneCallback& callback : callbacks) callback(task);
}

void Executor::OnEnded(std::vector<std::string> ids) {
  if (waited_elsewhere_count_.load(std::memory_order_relaxed) == 0) return;
  std::vector<std::string> waited;
  {
    absl::MutexLock lock(&elsewhere_mu_);
    if (ids.empty()) {
      for (const auto& [id, callbacks] : waited_elsewhere_) {
        waited.push_back(id);
      }
    } else {
      for (std::string& id : ids) {
        if (waited_elsewhere_.contains(id)) waited.push_back(std::move(id));
      }
    }
  }
  if (!waited.empty()) CheckWaitedElsewhere(std::move(waited));
}

void Executor::OnCancelRequested(const std::string& id) {
  if (std::shared_ptr<Task> task = table_.Find(id); task != nullptr) {
    CancelTask(task, "cancelled by request");
  }
}

int Executor::FreeSlotsOf(const Pool& pool) const {
  const PoolStats stats = pool.Stats();
  const PoolLoad& load = *loads_.at(&pool);
  const int64_t workers = pool.config().workers;
  const int64_t run_nanos = load.run_nanos.load(std::memory_order_relaxed);
  int64_t ahead = workers;
  if (run_nanos > 0) {
    ahead = std::clamp<int64_t>(
        workers * absl::ToInt64Nanoseconds(kWorkAhead) / run_nanos, workers,
        kMaxAhead);
  }
  const int64_t free = workers + ahead - stats.busy -
                       static_cast<int64_t>(stats.queued) -
                       load.committing.load(std::memory_order_relaxed);
  return static_cast<int>(std::max<int64_t>(0, free));
}

std::vector<std::pair<std::string, int>> Executor::FreeSlots() {
  std::vector<std::pair<std::string, int>> slots;
  if (draining_.load() || memory_.live() >= memory_.limit()) return slots;
  for (const PoolConfig& config : options_.pools) {
    slots.emplace_back(config.name, FreeSlotsOf(*pools_.at(config.name)));
  }
  return slots;
}

void Executor::RunClaimed(std::vector<TaskSnapshot> tasks) {
  int64_t requeued = 0;
  for (TaskSnapshot& task : tasks) {
    if (draining_.load()) {
      store_->Update(std::move(task), absl::InfiniteFuture(),
                     /*release=*/true, nullptr);
      continue;
    }
    RecoverTask(task, requeued);
  }
}

absl::Status Executor::Recover() {
  REMEX_ASSIGN_OR_RETURN(std::vector<TaskSnapshot> unfinished,
                         store_->LoadUnfinished());
  int64_t requeued = 0;
  for (const TaskSnapshot& row : unfinished) RecoverTask(row, requeued);
  if (options_.store_observer != nullptr && requeued > 0) {
    options_.store_observer->OnRequeued(requeued);
  }
  return absl::OkStatus();
}

void Executor::RecoverTask(const TaskSnapshot& row, int64_t& requeued) {
  const TaskSpec& spec = *row.spec;
  const FunctionSpec* function = registry_.Find(spec.function);
  auto pool = pools_.find(spec.pool);
  Admission admission{pool == pools_.end() ? nullptr : pool->second.get(),
                      function};
  std::shared_ptr<Task> task =
      MakeTask(row.id, row.list_position, TaskSpec(spec), row.created_at,
               admission, nullptr, 0);
  task->Restore(row.attempt, row.cancel_requested);
  // Accepted before: counted whatever the budget (FreeSlots claims none
  // while it is full).
  memory_.Add(Task::HeldBytes(task->spec()));
  active_tasks_.fetch_add(1, std::memory_order_relaxed);
  if (!spec.owner.empty()) {
    absl::MutexLock lock(&owners_mu_);
    ++active_by_owner_[spec.owner];  // a quota does not refuse what it had
  }
  table_.Insert(task);
  if (function == nullptr || admission.pool == nullptr) {
    FinishTask(task, TaskState::kFailed,
               ErrorOutcome(
                   absl::StatusCode::kFailedPrecondition,
                   absl::StrCat("after a restart, ",
                                function == nullptr ? "its function is unknown"
                                                    : "its pool is gone")));
    return;
  }
  if (row.cancel_requested) {
    // Asked through another replica while nobody ran it.
    FinishTask(
        task, TaskState::kCancelled,
        ErrorOutcome(absl::StatusCode::kCancelled, "cancelled by request"));
    return;
  }
  if (row.state == TaskState::kRunning) {
    if (row.attempt >= spec.max_attempts) {
      FinishTask(task, TaskState::kWorkerLost,
                 ErrorOutcome(absl::StatusCode::kAborted,
                              absl::StrCat("the server stopped while the task "
                                           "ran (attempt ",
                                           row.attempt, " of ",
                                           spec.max_attempts, ")")));
      return;
    }
    ++requeued;
    RecordState(*task);  // QUEUED again
  }
  ArmQueueTimeout(task);
  // Accepted once already: a full queue ends it rather than loses it.
  if (absl::Status status = admission.pool->Enqueue(task); !status.ok()) {
    FinishTask(task, TaskState::kCancelled,
               ErrorOutcome(status.code(), std::string(status.message())));
    return;
  }
  // Committed when it was created: it waited for a server since then.
  if (row.state == TaskState::kQueued) ReportClaimLag(row.created_at);
}

void Executor::ReportClaimLag(absl::Time committed) {
  if (options_.store_observer == nullptr) return;
  options_.store_observer->OnClaimLag(absl::Now() - committed);
}

}  // namespace remex::executor
