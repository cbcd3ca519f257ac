#include "tests/executor/executor_test_util.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace remex::executor::testing {

absl::StatusOr<TaskSnapshot> AwaitTerminal(Executor& executor,
                                           const std::string& id,
                                           absl::Duration timeout) {
  // Shared with the callback, which may run after a timed-out wait returns.
  struct Slot {
    absl::Mutex mu;
    std::optional<TaskSnapshot> snapshot ABSL_GUARDED_BY(mu);
  };
  auto slot = std::make_shared<Slot>();
  if (absl::Status status =
          executor.OnDone(id,
                          [slot](const TaskSnapshot& snapshot) {
                            absl::MutexLock lock(&slot->mu);
                            slot->snapshot = snapshot;
                          });
      !status.ok()) {
    return status;
  }
  absl::MutexLock lock(&slot->mu);
  const auto has_snapshot = [&slot] { return slot->snapshot.has_value(); };
  if (!slot->mu.AwaitWithTimeout(absl::Condition(&has_snapshot), timeout)) {
    return absl::DeadlineExceededError("task " + id + " did not end in time");
  }
  return *slot->snapshot;
}

PoolConfig ThreadPoolConfig(std::string name, int workers, size_t max_queue) {
  return PoolConfig{.name = std::move(name),
                    .kind = PoolKind::kThread,
                    .workers = workers,
                    .max_queue = max_queue};
}

TaskSpec MakeSpec(std::string function, Json args) {
  TaskSpec spec;
  spec.function = std::move(function);
  spec.args = std::move(args);
  return spec;
}

}  // namespace remex::executor::testing
