// What the executor tells an observer (the metrics) about tasks: a small
// interface so that the core does not depend on Prometheus.
#ifndef REMEX_SERVER_EXECUTOR_TASK_OBSERVER_H_
#define REMEX_SERVER_EXECUTOR_TASK_OBSERVER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/executor/task.h"

namespace remex::executor {

// Why Submit refused a task.
enum class RejectReason {
  kQueueFull,  // RESOURCE_EXHAUSTED
  kDraining,   // UNAVAILABLE
  kInvalid,    // INVALID_ARGUMENT: bad args, unknown pool, bad option
  kNotFound,   // NOT_FOUND: unknown function
};

// "queue_full", "draining", "invalid", "not_found".
absl::string_view RejectReasonName(RejectReason reason);

// The reason for the status Submit answered with. REQUIRES: !status.ok().
RejectReason RejectReasonOf(const absl::Status& status);

// The events of the tasks of one (pool, function) pair. Made once per pair
// when the executor starts, so that the per-task calls need no lookup.
//
// Implementations must be thread-safe and cheap: the calls are made on the
// submitting thread (a gRPC poller) and on pool workers, once per task, and
// must not block.
class TaskSeries {
 public:
  virtual ~TaskSeries() = default;
  // The task was accepted.
  virtual void OnSubmitted() = 0;
  // The task started for the first time, `queued` after it was created.
  virtual void OnStarted(absl::Duration queued) = 0;
  // The task reached terminal `state`; `ran` is how long it ran (from its
  // start to its end), none if it never started.
  virtual void OnFinished(TaskState state,
                          std::optional<absl::Duration> ran) = 0;
};

// Receives task events from the Executor (see ExecutorOptions::observer).
//
// Thread-safe, like TaskSeries. Must outlive the Executor it is given to.
class TaskObserver {
 public:
  virtual ~TaskObserver() = default;

  // Called by Executor::Create for every pool and registered function, before
  // any task is submitted. Null: nothing to observe for the pair.
  virtual std::unique_ptr<TaskSeries> AddSeries(
      const std::string& pool, const std::string& function) = 0;

  // Submit refused a task. `pool` is the pool it would have run on, or empty
  // when there is none (unknown function or pool): never a caller's string
  // that names nothing.
  virtual void OnRejected(const std::string& pool, RejectReason reason) = 0;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TASK_OBSERVER_H_
