// Pools: named groups of workers that run queued tasks.
#ifndef REMEX_SERVER_EXECUTOR_POOL_H_
#define REMEX_SERVER_EXECUTOR_POOL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/executor/task.h"

namespace remex::executor {

enum class PoolKind { kThread, kProcess };

absl::string_view PoolKindName(PoolKind kind);
absl::StatusOr<PoolKind> ParsePoolKind(absl::string_view name);

struct PoolConfig {
  std::string name;
  PoolKind kind = PoolKind::kThread;
  int workers = 4;
  // Tasks that may wait in the queue; more are refused RESOURCE_EXHAUSTED.
  size_t max_queue = 100000;

  // Process pools only (0: no limit). How long a cancelled or timed-out
  // task's worker may take to stop before it is killed and replaced.
  absl::Duration cancel_grace = absl::Seconds(1);
  // Address space of each worker process (RLIMIT_AS), in bytes.
  int64_t memory_limit_bytes = 0;
  // CPU seconds each task may use in its worker (RLIMIT_CPU).
  int64_t cpu_limit_seconds = 0;
  // Open files of each worker process (RLIMIT_NOFILE).
  int64_t max_open_files = 0;
  // Tasks a worker runs before it is replaced by a fresh one.
  int64_t max_tasks_per_worker = 0;
};

// A pool's figures at one moment (read at scrape time by monitoring).
struct PoolStats {
  std::string name;
  PoolKind kind = PoolKind::kThread;
  // Process pools: the worker processes alive now (below config().workers
  // while a lost worker is being replaced).
  int workers = 0;
  // Workers with a task (process pools: also one that is being stopped after
  // its task was cancelled or timed out).
  int busy = 0;
  size_t queued = 0;
  // When the longest-waiting queued task was submitted (InfiniteFuture():
  // none queued).
  absl::Time oldest_queued_created_at = absl::InfiniteFuture();
  size_t max_queue = 0;
  // Process pools: workers replaced so far, by reason ("crash", "cancel",
  // "timeout", "recycle"). Empty for thread pools.
  std::map<std::string, int64_t> worker_restarts;
};

// Runs tasks for a pool. Implemented by the Executor, which owns the state
// machine; pools only decide where and when.
//
// Thread-safe.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;

  // Runs one task on the calling thread, from start to its terminal state
  // (thread pools).
  virtual void Run(const std::shared_ptr<Task>& task) = 0;

  // The same in steps, for pools that run the function elsewhere (process
  // pools). BeginRun moves the task QUEUED -> RUNNING (a new attempt) and
  // arms its run_timeout; false if the task already ended (skip it).
  virtual bool BeginRun(const std::shared_ptr<Task>& task) = 0;
  // Ends attempt `attempt` of a begun task in terminal `state`; does nothing
  // if the task ended meanwhile (cancel, timeout) or moved on to another
  // attempt.
  virtual void CompleteRun(const std::shared_ptr<Task>& task, int32_t attempt,
                           TaskState state,
                           std::shared_ptr<const TaskOutcome> outcome) = 0;
  // Puts attempt `attempt` of a begun task back to QUEUED for another
  // attempt, if its spec allows one more (max_attempts); the caller then
  // queues it again. False (and nothing changes) if it does not, or if the
  // task ended meanwhile.
  virtual bool RetryRun(const std::shared_ptr<Task>& task, int32_t attempt) = 0;
};

// A queue in front of workers: higher priority first, FIFO within a
// priority, at most config().max_queue waiting.
//
// Implementations are thread-safe. The pool shares ownership of queued tasks
// until they are run or removed.
class Pool {
 public:
  virtual ~Pool() = default;

  virtual const PoolConfig& config() const = 0;

  // Queues `task`. RESOURCE_EXHAUSTED when the queue is full,
  // FAILED_PRECONDITION once the pool is shut down.
  virtual absl::Status Enqueue(std::shared_ptr<Task> task) = 0;

  // Takes `task` out of the queue if it is still there; true if it was.
  virtual bool RemoveQueued(const Task& task) = 0;

  // Empties the queue and returns what was in it, in queue order.
  virtual std::vector<std::shared_ptr<Task>> TakeAllQueued() = 0;

  virtual PoolStats Stats() const = 0;

  // Stops the workers once their current task returns and joins them.
  // Tasks still queued stay queued (take them with TakeAllQueued()).
  virtual void Shutdown() = 0;
};

// Makes a pool of one kind. Thread pools are built in; process pools come
// from the server's wiring (server/process), so that the core stays free of
// protobuf.
using PoolFactory = std::function<absl::StatusOr<std::unique_ptr<Pool>>(
    const PoolConfig& config, TaskRunner& runner)>;
using PoolFactories = std::map<PoolKind, PoolFactory>;

// Creates the pool `config` describes; its workers call `runner`. A kind
// with an entry in `factories` is made by it; otherwise only thread pools
// are available (UNIMPLEMENTED). REQUIRES: `runner` outlives the pool.
absl::StatusOr<std::unique_ptr<Pool>> CreatePool(
    const PoolConfig& config, TaskRunner& runner,
    const PoolFactories& factories = {});

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_POOL_H_
