// Every task the executor knows, by id, and the retention of finished ones.
#ifndef REMEX_SERVER_EXECUTOR_TASK_TABLE_H_
#define REMEX_SERVER_EXECUTOR_TASK_TABLE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/strings/string_view.h"
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
// Each shard keeps its tasks ordered by id and its finished tasks ordered by
// expiry, under one lock: inserting, finding and retaining a task takes only
// its shard's lock, never a table-wide one. The budget counts are atomics;
// over budget, the shard whose oldest entry expires first gives it up.
//
// Thread-safe. No lock is held while a task is destroyed by the table, nor
// more than one shard lock at a time.
class TaskTable {
 public:
  explicit TaskTable(RetentionLimits limits) : limits_(limits) {}
  TaskTable(const TaskTable&) = delete;
  TaskTable& operator=(const TaskTable&) = delete;

  // Ignored if a task with the same id is already in the table.
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

  struct Matches {
    // In id order.
    std::vector<std::shared_ptr<Task>> tasks;
    // Empty: the table was walked to its end. Else the walk stopped early:
    // every match up to this id is in `tasks` (or past `limit`), and the
    // next walk starts after it.
    std::string resume_after;
  };
  // Up to `limit` tasks with ids greater than `after` (all if empty) for
  // which `match` holds, in id order. Each shard is walked in id order only
  // until it has given `limit` matches or visited max(limit,
  // kScanPerShard) tasks, so a call costs O(shards * (log n + max(limit,
  // kScanPerShard))) whatever the filter: a filter that matches few tasks
  // gets fewer than `limit` (maybe none) and a `resume_after`, rather than
  // a walk of the whole table. `match` runs with a shard lock held: it must
  // be quick and not call into the table.
  Matches FirstMatchesAfter(
      const std::string& after, size_t limit,
      const std::function<bool(const Task&)>& match) const;

  // Tasks a shard visits at most per FirstMatchesAfter (unless `limit` is
  // larger).
  static constexpr size_t kScanPerShard = 256;

  size_t retained_tasks() const { return retained_tasks_.load(); }
  size_t retained_bytes() const { return retained_bytes_.load(); }

 private:
  static constexpr size_t kShards = 32;
  // Expired tasks taken out of a shard per hold of its lock.
  static constexpr int kEvictBatch = 256;
  // Orders tasks by id, and finds them by id without building a key.
  struct ById {
    using is_transparent = void;
    static absl::string_view IdOf(const std::shared_ptr<Task>& task) {
      return task->id();
    }
    static absl::string_view IdOf(absl::string_view id) { return id; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return IdOf(a) < IdOf(b);
    }
  };
  // (Task::table.expire_at_nanos, task): a finished task of the shard.
  using RetentionKey = std::pair<int64_t, Task*>;
  struct Shard {
    mutable absl::Mutex mu;
    // Ordered, so that List can page by id without sorting the table.
    absl::btree_set<std::shared_ptr<Task>, ById> tasks ABSL_GUARDED_BY(mu);
    // Finished tasks still in `tasks`, by expiry. A Task* here is alive:
    // `tasks` owns it, and leaving `tasks` takes it out of here first.
    absl::btree_set<RetentionKey> retention ABSL_GUARDED_BY(mu);
    // retention.begin()->first, or INT64_MAX when empty: read without the
    // lock to pick the shard to evict from.
    std::atomic<int64_t> first_expiry{std::numeric_limits<int64_t>::max()};
  };

  Shard& ShardOf(absl::string_view id) const;
  // Takes `it` out of the shard (and out of retention) and returns it.
  std::shared_ptr<Task> EraseLocked(
      Shard& shard, absl::btree_set<std::shared_ptr<Task>, ById>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void UnretainLocked(Shard& shard, Task& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Forgets the retained task closest to expiry, table-wide; null if none.
  std::shared_ptr<Task> EvictFirst();
  bool OverBudget() const;

  const RetentionLimits limits_;
  mutable std::array<Shard, kShards> shards_;
  std::atomic<size_t> retained_tasks_{0};
  std::atomic<size_t> retained_bytes_{0};
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TASK_TABLE_H_
