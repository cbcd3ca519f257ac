// MemoryBudget: the one bound on the bytes the server's tasks hold.
#ifndef REMEX_SERVER_EXECUTOR_MEMORY_BUDGET_H_
#define REMEX_SERVER_EXECUTOR_MEMORY_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace remex::executor {

// The budget and its use at one moment.
struct MemoryUse {
  size_t limit = 0;
  size_t queued = 0;
  size_t running = 0;
  // Finished tasks kept (the task table's count).
  size_t retained = 0;
  // Submits refused because they did not fit.
  int64_t rejected = 0;
};

// Counts the bytes of the tasks the executor holds before they end, queued
// and running (Task::HeldBytes), against one limit that they share with the
// finished tasks kept for their ttl (the task table's retained bytes, which
// the caller passes in). Live tasks never pass the limit: a task is
// admitted only if it fits. Finished tasks give way to live ones: the
// executor forgets the oldest until the newcomer fits (TaskTable).
//
// Thread-safe and lock-free. The counts are exact once the moves of a task
// are done; a task that ends while it starts may leave queued() or
// running() off by its bytes for that moment (each reads 0 at least). The
// limit can be passed only by finished tasks racing an admission, until
// the next admission or end evicts.
class MemoryBudget {
 public:
  explicit MemoryBudget(size_t limit) : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  size_t limit() const { return limit_; }

  // Counts `bytes` of a new task as queued if queued + running + `retained`
  // + `bytes` stays within the limit; else changes nothing and returns
  // false.
  bool TryAdmit(size_t bytes, size_t retained);
  // Counts `bytes` of a task accepted before (recovered from a store, or
  // claimed from it) as queued, whatever the limit.
  void Add(size_t bytes);
  // A queued task started, or a running one went back to its queue.
  void MoveToRunning(size_t bytes);
  void MoveToQueued(size_t bytes);
  // A task that was queued (or running) is no longer held live: it ended,
  // was refused or was handed back.
  void Release(size_t bytes, bool running);
  // Counts a submit refused because it did not fit.
  void CountRejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }

  size_t queued() const { return AtLeastZero(queued_); }
  size_t running() const { return AtLeastZero(running_); }
  size_t live() const { return queued() + running(); }
  int64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  static size_t AtLeastZero(const std::atomic<int64_t>& count);

  const size_t limit_;
  // Signed: a task's moves may run in either order for a moment.
  std::atomic<int64_t> queued_{0};
  std::atomic<int64_t> running_{0};
  std::atomic<int64_t> rejected_{0};
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_MEMORY_BUDGET_H_
