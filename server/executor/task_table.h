// Every task the executor knows, by id, and the retention of finished ones.
#ifndef REMEX_SERVER_EXECUTOR_TASK_TABLE_H_
#define REMEX_SERVER_EXECUTOR_TASK_TABLE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor/task.h"

namespace remex::executor {

struct RetentionLimits {
  // Finished tasks kept at most; the ones closest to expiry go first.
  size_t max_tasks = 1'000'000;
  // Bytes kept at most (the tasks, as Task::HeldBytes and
  // TaskOutcome::ApproximateBytes count them). By default no bound of its
  // own: the executor's memory budget bounds finished tasks with the rest.
  size_t max_bytes = std::numeric_limits<size_t>::max();
};

// A sharded map from task id to task, plus the bookkeeping that forgets
// finished tasks when their ttl passes or the count/byte budget is exceeded.
//
// A task's shard is picked by its id. Each shard keeps its tasks in list
// order (Task::list_position, for List's pages), finds them by id through
// a hash index, and keeps its finished tasks ordered by expiry, all under
// one lock: inserting, finding and retaining a task takes only its shard's
// lock, never a table-wide one. The budget counts are atomics; over budget,
// the shard whose oldest entry expires first gives it up.
//
// Memory per task (retention memory per kept task is a tracked figure, see
// the retention row of BENCHMARKS.md): 16 bytes in the list-order btree
// (full nodes: list positions mostly arrive in increasing order, and
// appends fill a node before it splits) and 8 bytes plus a control byte
// per slot of the id index (a swiss table kept 7/16 to 7/8 full: 10 to 21
// bytes, about 14 on average); a finished task adds 16 bytes in the expiry
// btree. Ordering by id as well would cost a second btree; a hash index
// by id is the cheaper way to answer Find. Measured (glibc heap, 1,000,000
// retained no-op tasks, task + id + table): 521 bytes per task, 469 when
// ids were 15 characters inline in the string and the table one btree by
// id: +32 for the id's own heap chunk, +19 for the id index at that fill.
//
// Thread-safe. No lock is held while a task is destroyed by the table, nor
// more than one shard lock at a time.
class TaskTable {
 public:
  explicit TaskTable(RetentionLimits limits) : limits_(limits) {}
  TaskTable(const TaskTable&) = delete;
  TaskTable& operator=(const TaskTable&) = delete;

  // Ignored if a task with the same id is already in the table.
  // REQUIRES: no other task in the table has the same list_position().
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
  // Forgets finished tasks, the one closest to expiry first, while
  // `over_budget` holds and any are left (the executor's memory budget).
  // `over_budget` runs with no lock held.
  void EvictWhile(absl::FunctionRef<bool()> over_budget);

  // Calls `visit` for every task, one shard at a time, with that shard's
  // lock held: `visit` must be quick and must not call back into the table.
  void ForEach(
      const std::function<void(const std::shared_ptr<Task>&)>& visit) const;

  struct Matches {
    // In list order (by Task::list_position).
    std::vector<std::shared_ptr<Task>> tasks;
    // Unset: the table was walked to its end. Else the walk stopped early:
    // every match up to this list position is in `tasks` (or past
    // `limit`), and the next walk starts after it.
    std::optional<uint64_t> resume_after;
  };
  // Up to `limit` tasks with list positions greater than `after` (all if 0)
  // for which `match` holds, in list order. Each shard is walked in list
  // order only until it has given `limit` matches or visited max(limit,
  // kScanPerShard) tasks, so a call costs O(shards * (log n + max(limit,
  // kScanPerShard))) whatever the filter: a filter that matches few tasks
  // gets fewer than `limit` (maybe none) and a `resume_after`, rather than
  // a walk of the whole table. `match` runs with a shard lock held: it must
  // be quick and not call into the table.
  Matches FirstMatchesAfter(
      uint64_t after, size_t limit,
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
  // Orders tasks by list position, and finds them by one.
  struct ByListPosition {
    using is_transparent = void;
    static uint64_t PositionOf(const std::shared_ptr<Task>& task) {
      return task->list_position();
    }
    static uint64_t PositionOf(uint64_t position) { return position; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return PositionOf(a) < PositionOf(b);
    }
  };
  // Hash and equality of the id index: by the task's id, and looked up by
  // an id without building a key.
  struct IdOf {
    static absl::string_view Of(const Task* task) { return task->id(); }
    static absl::string_view Of(absl::string_view id) { return id; }
  };
  struct IdHash {
    using is_transparent = void;
    template <typename A>
    size_t operator()(const A& a) const {
      return absl::HashOf(IdOf::Of(a));
    }
  };
  struct IdEq {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return IdOf::Of(a) == IdOf::Of(b);
    }
  };
  using ListOrder = absl::btree_set<std::shared_ptr<Task>, ByListPosition>;
  // (Task::table.expire_at_nanos, task): a finished task of the shard.
  using RetentionKey = std::pair<int64_t, Task*>;
  struct Shard {
    mutable absl::Mutex mu;
    // Owns the shard's tasks. Ordered, so that List can page in list order
    // without sorting the table.
    ListOrder tasks ABSL_GUARDED_BY(mu);
    // The same tasks, by id. A Task* here is alive: `tasks` owns it, and
    // leaving `tasks` takes it out of here first.
    absl::flat_hash_set<Task*, IdHash, IdEq> by_id ABSL_GUARDED_BY(mu);
    // Finished tasks still in `tasks`, by expiry. A Task* here is alive, as
    // in `by_id`.
    absl::btree_set<RetentionKey> retention ABSL_GUARDED_BY(mu);
    // retention.begin()->first, or INT64_MAX when empty: read without the
    // lock to pick the shard to evict from.
    std::atomic<int64_t> first_expiry{std::numeric_limits<int64_t>::max()};
  };

  Shard& ShardOf(absl::string_view id) const;
  // Takes `task`, which is in `shard`, out of it (and out of retention) and
  // returns it.
  std::shared_ptr<Task> EraseLocked(Shard& shard, const Task& task)
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
