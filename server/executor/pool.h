// Pools: named groups of workers that run queued tasks.
#ifndef REMEX_SERVER_EXECUTOR_POOL_H_
#define REMEX_SERVER_EXECUTOR_POOL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
};

// A pool's figures at one moment (read at scrape time by monitoring).
struct PoolStats {
  std::string name;
  PoolKind kind = PoolKind::kThread;
  int workers = 0;
  int busy = 0;
  size_t queued = 0;
  size_t max_queue = 0;
  // Process pools: workers replaced so far, by reason ("crash", "cancel",
  // "timeout", "recycle"). Empty for thread pools.
  std::map<std::string, int64_t> worker_restarts;
};

// Runs one task on the calling worker. Implemented by the Executor, which
// owns the state machine; pools only decide where and when.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  virtual void Run(const std::shared_ptr<Task>& task) = 0;
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

// Creates the pool `config` describes; its workers call `runner`.
// REQUIRES: `runner` outlives the pool.
absl::StatusOr<std::unique_ptr<Pool>> CreatePool(const PoolConfig& config,
                                                 TaskRunner& runner);

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_POOL_H_
