// The queue in front of a pool's workers, shared by every pool kind.
#ifndef REMEX_SERVER_EXECUTOR_TASK_QUEUE_H_
#define REMEX_SERVER_EXECUTOR_TASK_QUEUE_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "server/executor/pool.h"
#include "server/executor/task.h"

namespace remex::executor {

// Higher priority first, FIFO within a priority, at most config.max_queue
// waiting.
//
// Thread-compatible: the owning pool guards it with its own lock. Shares
// ownership of the queued tasks.
class TaskQueue {
 public:
  explicit TaskQueue(const PoolConfig& config) : config_(config) {}

  // RESOURCE_EXHAUSTED when full, unless `over_limit` (a task that was
  // accepted before and comes back for another attempt).
  absl::Status Push(std::shared_ptr<Task> task, bool over_limit = false);
  // Null when empty.
  std::shared_ptr<Task> PopFront();
  // True if `task` was queued (and now is not).
  bool Remove(const Task& task);
  // Everything queued, in queue order; leaves the queue empty.
  std::vector<std::shared_ptr<Task>> TakeAll();

  // When the longest-waiting queued task was submitted; InfiniteFuture()
  // when the queue is empty. Looks at the head of each priority (FIFO
  // within one): O(priorities * log n).
  absl::Time OldestCreatedAt() const;

  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }

 private:
  // Orders the queue: higher priority first, then submission order.
  using QueueKey = std::pair<int64_t, uint64_t>;  // (-priority, sequence)

  static QueueKey KeyOf(const Task& task) {
    return {-static_cast<int64_t>(task.spec().priority), task.queue.sequence};
  }

  const PoolConfig& config_;
  absl::btree_map<QueueKey, std::shared_ptr<Task>> queue_;
  uint64_t next_sequence_ = 0;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TASK_QUEUE_H_
