// The executor core: accepts tasks, runs them on named pools, tracks every
// task to exactly one terminal state, and forgets finished ones after their
// retention. No gRPC, protobuf or Prometheus here.
#ifndef REMEX_SERVER_EXECUTOR_EXECUTOR_H_
#define REMEX_SERVER_EXECUTOR_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor/function_registry.h"
#include "server/executor/memory_budget.h"
#include "server/executor/pool.h"
#include "server/executor/store.h"
#include "server/executor/task.h"
#include "server/executor/task_observer.h"
#include "server/executor/task_query.h"
#include "server/executor/task_table.h"
#include "server/executor/timer_queue.h"

namespace remex::executor {

struct ExecutorOptions {
  // At least one. Functions without a default pool of their own run on the
  // pool named "default", or on the first pool if none has that name.
  std::vector<PoolConfig> pools;
  // Retention of finished tasks when the caller sets no ttl.
  absl::Duration default_ttl = absl::Minutes(10);
  RetentionLimits retention;
  // How often expired tasks are forgotten.
  absl::Duration retention_sweep_interval = absl::Seconds(1);
  // Makers of the pool kinds that are not built in (process pools).
  PoolFactories pool_factories;
  // Told about every task (the metrics); null: none. Not owned; must outlive
  // the executor.
  TaskObserver* observer = nullptr;
  // Where tasks are kept durably; null: only in the executor's memory (the
  // memory store). Not owned; must outlive the executor. The executor
  // re-queues what the store holds unfinished when it is created.
  Store* store = nullptr;
  // Told how many tasks were re-queued at start; null: nobody. Not owned.
  StoreObserver* store_observer = nullptr;
  // Bytes the tasks held here may take, queued, running and finished (see
  // MemoryBudget): a submit that would pass it is refused
  // RESOURCE_EXHAUSTED, and finished tasks are forgotten, oldest first,
  // to make room for new ones.
  size_t memory_budget = std::numeric_limits<size_t>::max();
};

// Runs `function` for task `task_id` on the calling thread and returns what
// it produced; an outcome with an error code means it failed. Catches
// whatever the function throws. Used by thread pools and process workers.
std::shared_ptr<const TaskOutcome> RunFunction(
    const FunctionSpec& function, const std::string& task_id,
    const TaskSpec& spec, const CancellationToken& cancellation);

// Most runs a task may be given (TaskSpec::max_attempts): a crashing
// function retried without end would keep a worker respawning.
inline constexpr int32_t kMaxAttempts = 100;

// Owns the pools, the task table and the timers.
//
// Thread-safe: every method may be called from any thread. Done callbacks
// (OnDone) run on whichever thread ends the task (with a durable store: the
// store thread that committed the end) and must not block.
// Shutdown order: StartDrain(), WaitUntilIdle(grace), CancelAll(), then the
// destructor stops the pools and timers.
//
// With a durable store (ExecutorOptions::store), shutting down loses
// nothing: StartDrain stops claiming and hands the queued tasks back to the
// store (QUEUED there, for any replica), and CancelAll stops what still
// runs and hands it back too (queued again, attempt + 1 at its next start),
// or ends it WORKER_LOST when its attempts are spent. Callers waiting on
// such tasks here are not told (the server's calls end with it).
//
// Replicas sharing a store: the executor keeps the tasks it accepts when
// its pool has room (or no other replica is live), and leaves the others
// to whichever replica claims them; it runs what it claims
// (StoreRunner). Calls about a task it does not hold go to the store:
// Await and Session watches wait for the task's end signal, Cancel asks
// the store (which signals the replica that holds the task).
class Executor : private TaskRunner, private StoreRunner {
 public:
  // INVALID_ARGUMENT for a bad pool config. REQUIRES: `registry` is fully
  // registered and outlives the executor.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(
      ExecutorOptions options, const FunctionRegistry& registry);
  ~Executor() override;

  // Accepts a task: NOT_FOUND for an unknown function, INVALID_ARGUMENT for
  // bad args, an unknown pool or a bad option (max_attempts outside
  // [1, kMaxAttempts], a negative limit), RESOURCE_EXHAUSTED when the
  // pool's queue is full, the caller has max_active_tasks active tasks, or
  // the task would not fit the memory budget with every finished task
  // forgotten, UNAVAILABLE while draining. The task's owner is the caller. If
  // the task is accepted, `listener` (if set) is told of its end under `tag`:
  // it is set before the task can start, so it needs no lookup and cannot miss
  // the end. If it is refused, `listener` is not told.
  absl::StatusOr<TaskSnapshot> Submit(TaskSpec spec, const Caller& caller = {},
                                      DoneListener* listener = nullptr,
                                      uint64_t tag = 0);

  // The methods below answer NOT_FOUND for an unknown (or forgotten) id and
  // for a task that `caller` does not see.
  absl::StatusOr<TaskSnapshot> Get(const std::string& id,
                                   const Caller& caller = {}) const;

  // Ends a queued or running task CANCELLED (a running function is told
  // through its token); a finished task is left as it is.
  absl::StatusOr<TaskSnapshot> Cancel(const std::string& id,
                                      const Caller& caller = {});

  // Forgets a task, cancelling it first if it has not finished.
  absl::Status Delete(const std::string& id, const Caller& caller = {});

  // Tasks `caller` sees, in the order they were accepted, oldest first, a
  // page at a time. INVALID_ARGUMENT for a page token this server did not
  // make.
  absl::StatusOr<ListPage> List(const ListQuery& query,
                                const Caller& caller = {}) const;

  // Runs `callback` with the terminal snapshot once the task ends (at once,
  // on this thread, if it has): exactly once, unless this fails; then
  // `callback` is dropped, not run.
  absl::Status OnDone(const std::string& id, DoneCallback callback,
                      const Caller& caller = {});

  // The same calls, answered through a callback: inline, before they
  // return, on an executor without a durable store (and for tasks in its
  // table); else on a store thread once the store has answered (Submit: once
  // the task is committed). The front end uses these, so that no poller ever
  // waits on a database. Same answers as the calls above.
  using SubmitDone = absl::AnyInvocable<void(absl::StatusOr<TaskSnapshot>)>;
  using TaskDone = absl::AnyInvocable<void(absl::StatusOr<TaskSnapshot>)>;
  using StatusDone = absl::AnyInvocable<void(absl::Status)>;
  using ListDone = absl::AnyInvocable<void(absl::StatusOr<ListPage>)>;
  void SubmitAsync(TaskSpec spec, const Caller& caller, DoneListener* listener,
                   uint64_t tag, SubmitDone done);
  void GetAsync(const std::string& id, const Caller& caller,
                TaskDone done) const;
  void CancelAsync(const std::string& id, const Caller& caller, TaskDone done);
  void DeleteAsync(const std::string& id, const Caller& caller,
                   StatusDone done);
  void ListAsync(ListQuery query, const Caller& caller, ListDone done) const;
  // `registered` gets what OnDone returns, before `callback` can run; then
  // `callback` runs as OnDone's would.
  void OnDoneAsync(const std::string& id, DoneCallback callback,
                   const Caller& caller, StatusDone registered);

  const FunctionRegistry& functions() const { return registry_; }
  // The pool a function runs on when Submit names none.
  const std::string& DefaultPoolOf(const FunctionSpec& function) const;
  std::vector<PoolStats> PoolStatistics() const;
  size_t retained_tasks() const { return table_.retained_tasks(); }
  // The memory budget and its use (ExecutorOptions::memory_budget).
  MemoryUse memory_use() const;
  // Tasks accepted and not yet terminal.
  int64_t active_tasks() const { return active_tasks_.load(); }

  // Refuses new tasks (UNAVAILABLE) and cancels every queued one. Running
  // tasks go on.
  void StartDrain();
  bool draining() const { return draining_.load(); }
  // Waits until no task is active or `deadline` passes; true if idle.
  bool WaitUntilIdle(absl::Time deadline);
  // Ends every task that is not terminal CANCELLED with `reason` (with a
  // durable store: stops them, see above).
  void CancelAll(const std::string& reason);

 private:
  // What Admit resolved for a task it lets in.
  struct Admission {
    Pool* pool = nullptr;
    const FunctionSpec* function = nullptr;
    // What the task was charged in the memory budget (Task::HeldBytes).
    size_t bytes = 0;
  };
  // Lets store callbacks that outlive the executor find out: a callback
  // holds it shared and runs only under a reader lock while `alive`; the
  // destructor clears `alive` under the writer lock, after the callbacks
  // in progress.
  struct Lifeline {
    absl::Mutex mu;
    bool alive ABSL_GUARDED_BY(mu) = true;
  };

  Executor(ExecutorOptions options, const FunctionRegistry& registry);
  absl::Status StartPools();
  // Re-queues (or ends) the unfinished tasks of the store.
  absl::Status Recover();
  void RecoverTask(const TaskSnapshot& row, int64_t& requeued);
  // Tells the store observer that a task committed at `committed` is
  // runnable now (in its pool's queue).
  void ReportClaimLag(absl::Time committed);
  // Asks the observer for the series of every (pool, function) pair.
  void AddObserverSeries();
  // Submit, less the report of a refusal; sets `pool` once it is resolved.
  absl::StatusOr<TaskSnapshot> Accept(TaskSpec spec, const Caller& caller,
                                      DoneListener* listener, uint64_t tag,
                                      const Pool*& pool);
  // The checks of Submit: completes `spec` (pool, run_timeout, owner) and
  // takes the caller's owner slot; sets `pool` once it is resolved.
  absl::StatusOr<Admission> Admit(TaskSpec& spec, const Caller& caller,
                                  const Pool*& pool);
  void ReportRejected(const Pool* pool, const absl::Status& status);
  // Charges a new task's `bytes` to the memory budget, forgetting finished
  // tasks (oldest first) until it fits; RESOURCE_EXHAUSTED if it does not
  // fit with none left.
  absl::Status AdmitBytes(size_t bytes);
  // Forgets finished tasks, oldest first, while the budget is passed.
  void EvictOverBudget();
  std::shared_ptr<Task> MakeTask(std::string id, uint64_t list_position,
                                 TaskSpec spec, absl::Time created_at,
                                 const Admission& admission,
                                 DoneListener* listener, uint64_t tag);
  // Puts an accepted task, counted active, in the table and in its pool's
  // queue.
  absl::StatusOr<TaskSnapshot> Launch(const std::shared_ptr<Task>& task,
                                      Pool& pool);
  // Submit with a durable store: answers once the task is committed.
  void SubmitDurably(TaskSpec spec, const Caller& caller,
                     DoneListener* listener, uint64_t tag, SubmitDone done);
  // Counts a task that was active no longer.
  void EndActive();
  // Undoes the acceptance of `task`, which its pool refused with `status`.
  absl::StatusOr<TaskSnapshot> Refuse(const std::shared_ptr<Task>& task,
                                      absl::Status status);

  // StoreRunner: called by the store's signal thread.
  std::vector<std::pair<std::string, int>> FreeSlots() override;
  void RunClaimed(std::vector<TaskSnapshot> tasks) override;
  void OnEnded(std::vector<std::string> ids) override;
  void OnCancelRequested(const std::string& id) override;
  // How many more tasks `pool` takes here: its workers, plus as many
  // queued as it runs in about kWorkAhead (by the runs it has seen; one per
  // worker at least), less those it runs, those queued and those accepted
  // here whose insert is being committed. So a replica holds little work
  // that another could start sooner, and claims tiny tasks by the hundred.
  int FreeSlotsOf(const Pool& pool) const;
  // Runs `callback` with task `id`'s terminal snapshot once the store
  // says it ended (the task is held by another replica, or none).
  void WaitElsewhere(const std::string& id, DoneCallback callback);
  // Publishes the number of tasks waited for elsewhere, and tells the
  // store whether to listen to ends.
  void CountWaitedElsewhere() ABSL_EXCLUSIVE_LOCKS_REQUIRED(elsewhere_mu_);
  // Drops the waiters of `id` without running them (its submit failed).
  void ForgetWaitedElsewhere(const std::string& id);
  // Looks the tasks waited for elsewhere up in the store, and tells their
  // waiters of those that ended.
  void CheckWaitedElsewhere(std::vector<std::string> ids);
  // Runs and forgets the waiters of `task` (terminal).
  void ResolveWaitedElsewhere(const TaskSnapshot& task);
  // Gives a task this replica holds back to the store, QUEUED, for any
  // replica.
  void HandBack(const Task& task);

  // TaskRunner: called by the pools.
  void Run(const std::shared_ptr<Task>& task) override;
  bool BeginRun(const std::shared_ptr<Task>& task) override;
  void CompleteRun(const std::shared_ptr<Task>& task, int32_t attempt,
                   TaskState state,
                   std::shared_ptr<const TaskOutcome> outcome) override;
  bool RetryRun(const std::shared_ptr<Task>& task, int32_t attempt) override;

  // The task with `id` if `caller` sees it, or NOT_FOUND.
  absl::StatusOr<std::shared_ptr<Task>> FindTask(const std::string& id,
                                                 const Caller& caller) const;
  // Counts a task of `caller` as active, or RESOURCE_EXHAUSTED when it has
  // max_active_tasks already. Only owners with a name are counted.
  absl::Status TakeOwnerSlot(const Caller& caller);
  // Gives back the slot of a task of `owner` that ended or was refused.
  void ReleaseOwnerSlot(const std::string& owner);
  absl::StatusOr<Pool*> ResolvePool(const TaskSpec& spec,
                                    const FunctionSpec& function) const;
  absl::Status CheckSpec(const TaskSpec& spec,
                         const FunctionSpec& function) const;
  void ArmQueueTimeout(const std::shared_ptr<Task>& task);
  void ArmRunTimeout(const std::shared_ptr<Task>& task);
  // Schedules ending `task` TIMED_OUT with `message` after `timeout`, if it
  // is then still in `only_from` (and in `only_attempt`, when > 0).
  TimerQueue::TimerId ArmTimeout(const std::shared_ptr<Task>& task,
                                 absl::Duration timeout, TaskState only_from,
                                 int32_t only_attempt, std::string message);
  // Cancels the timer whose id `timer` holds, if any, and clears it.
  void DisarmTimer(std::atomic<uint64_t>& timer);
  // The one way a task ends: moves it to `state`, frees its queue slot if it
  // was queued, disarms its timers, starts its retention, updates the counts,
  // and only then runs its done callbacks. False if it had already ended (or
  // the only_from/only_attempt condition did not hold).
  // With a durable store, the end is committed before anyone is told, and
  // with `persist` false it is not recorded at all (shutdown).
  bool FinishTask(const std::shared_ptr<Task>& task, TaskState state,
                  std::shared_ptr<const TaskOutcome> outcome,
                  std::optional<TaskState> only_from = std::nullopt,
                  int32_t only_attempt = 0, bool persist = true);
  // Records the task's state in the store, if there is one; nobody waits.
  void RecordState(const Task& task);
  // Ends a task CANCELLED (with the cancel recorded as requested).
  bool CancelTask(const std::shared_ptr<Task>& task, const std::string& reason);
  void ScheduleRetentionSweep();

  const ExecutorOptions options_;
  const FunctionRegistry& registry_;
  // options_.store; null: the memory store.
  Store* const store_;
  const std::shared_ptr<Lifeline> lifeline_ = std::make_shared<Lifeline>();
  MemoryBudget memory_;
  TaskTable table_;
  absl::flat_hash_map<std::string, std::unique_ptr<Pool>> pools_;
  // What FreeSlotsOf needs of a pool beyond its stats.
  struct PoolLoad {
    // Tasks accepted to run here whose insert is not committed yet.
    std::atomic<int64_t> committing{0};
    // A moving average of its runs' durations (0: none seen yet).
    std::atomic<int64_t> run_nanos{0};
  };
  // Filled by StartPools, then only read (the counts change).
  absl::flat_hash_map<const Pool*, std::unique_ptr<PoolLoad>> loads_;
  std::string default_pool_;
  // Filled by Create, then only read.
  absl::flat_hash_map<std::pair<const Pool*, const FunctionSpec*>,
                      std::unique_ptr<TaskSeries>>
      series_;
  // Declared last: destroyed first, so no timer callback runs once the pools
  // or the table are gone.
  TimerQueue timers_;

  std::atomic<bool> draining_{false};
  std::atomic<int64_t> active_tasks_{0};
  // The list position of the last task accepted (Task::list_position).
  std::atomic<uint64_t> last_list_position_{0};
  absl::Mutex idle_mu_;
  absl::CondVar idle_cv_;
  // Active tasks per named owner (absent: none), for max_active_tasks.
  absl::Mutex owners_mu_;
  absl::flat_hash_map<std::string, int64_t> active_by_owner_
      ABSL_GUARDED_BY(owners_mu_);
  // Callers waiting for tasks held elsewhere, by task id.
  absl::Mutex elsewhere_mu_;
  absl::flat_hash_map<std::string, std::vector<DoneCallback>> waited_elsewhere_
      ABSL_GUARDED_BY(elsewhere_mu_);
  // waited_elsewhere_.size(), read without the lock.
  std::atomic<size_t> waited_elsewhere_count_{0};
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_EXECUTOR_H_
