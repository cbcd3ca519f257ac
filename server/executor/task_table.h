// Every task the executor knows, by id, and the retention of finished ones.
#ifndef REMEX_SERVER_EXECUTOR_TASK_TABLE_H_
#define REMEX_SERVER_EXECUTOR_TASK_TABLE_H_

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor/task.h"

namespace remex::executor {

struct RetentionLimits {
  // Finished tasks kept at most; the ones closest to expiry go first.
  size_t max_tasks = 1'000'000;
  // Approximate bytes kept at most: args, input, results, outputs, errors.
  size_t max_bytes = size_t{1} << 30;
};

// A sharded map from task id to task, plus the bookkeeping that forgets
// finished tasks when their ttl passes or the count/byte budget is exceeded.
//
// Thread-safe. Lock order: the retention lock before a shard lock; no lock is
// held while a task is destroyed by a caller.
class TaskTable {
 public:
  explicit TaskTable(RetentionLimits limits) : limits_(limits) {}
  TaskTable(const TaskTable&) = delete;
  TaskTable& operator=(const TaskTable&) = delete;

  void Insert(std::shared_ptr<Task> task);
  // Null if unknown (never seen, deleted or expired).
  std::shared_ptr<Task> Find(const std::string& id) const;
  // Removes the task; returns it, or null if it was not there.
  std::shared_ptr<Task> Erase(const std::string& id);

  // Starts the retention clock of a task that just finished: it is forgotten
  // at `expire_at` or earlier if the budget runs out. Ignored if the task is
  // no longer in the table.
  void Retain(const std::shared_ptr<Task>& task, absl::Time expire_at,
              size_t bytes);
  // Forgets the finished tasks whose ttl has passed by `now`.
  void EvictExpired(absl::Time now);

  // Calls `visit` for every task, one shard at a time, with that shard's
  // lock held: `visit` must be quick and must not call back into the table.
  void ForEach(
      const std::function<void(const std::shared_ptr<Task>&)>& visit) const;

  // Up to `limit` tasks with ids greater than `after` (all if empty) for
  // which `match` holds, in id order. Each shard is walked in id order and
  // only until it has given `limit` matches, so a page costs O(shards *
  // (log n + limit)) when most tasks match, O(n) when few do. `match` runs
  // with a shard lock held: it must be quick and not call into the table.
  std::vector<std::shared_ptr<Task>> FirstMatchesAfter(
      const std::string& after, size_t limit,
      const std::function<bool(const Task&)>& match) const;

  size_t retained_tasks() const;
  size_t retained_bytes() const;

 private:
  static constexpr size_t kShards = 32;
  struct Shard {
    mutable absl::Mutex mu;
    // Ordered, so that List can page by id without sorting the table.
    absl::btree_map<std::string, std::shared_ptr<Task>> tasks
        ABSL_GUARDED_BY(mu);
  };
  using RetentionKey = std::pair<absl::Time, Task*>;

  Shard& ShardOf(const std::string& id) const;
  // Takes the entry closest to expiry out of retention and out of the table.
  std::shared_ptr<Task> EvictFirstLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(retention_mu_);
  void UnretainLocked(Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(retention_mu_);
  bool OverBudgetLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(retention_mu_);

  const RetentionLimits limits_;
  mutable std::array<Shard, kShards> shards_;

  mutable absl::Mutex retention_mu_;
  // Finished tasks still in the table, by expiry. A Task* here is alive: the
  // table owns it, and Erase takes it out of here before letting it go.
  absl::btree_set<RetentionKey> retention_ ABSL_GUARDED_BY(retention_mu_);
  size_t retained_bytes_ ABSL_GUARDED_BY(retention_mu_) = 0;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TASK_TABLE_H_
