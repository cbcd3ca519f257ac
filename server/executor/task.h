// The task model of the executor core: states, what a caller submits, what a
// finished task produced, and the Task object the core shares between the
// task table, the pools and the timers.
#ifndef REMEX_SERVER_EXECUTOR_TASK_H_
#define REMEX_SERVER_EXECUTOR_TASK_H_

#include <atomic>
#include <cstdint>
#include <forward_list>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/executor/cancellation.h"

namespace remex::executor {

using Json = nlohmann::json;

class TaskSeries;

// Numbers match remex.v1.State. The last five are terminal.
enum class TaskState : uint8_t {
  kQueued = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelled = 5,
  kTimedOut = 6,
  kWorkerLost = 7,
};

inline bool IsTerminal(TaskState state) {
  return state >= TaskState::kSucceeded;
}

// "QUEUED", "RUNNING", ... as in the proto enum.
absl::string_view TaskStateName(TaskState state);

// Heap bytes a JSON value holds beyond its own 16 bytes, estimated without
// serializing it: every node, key and string as the allocator holds it
// (chunk headers and rounding included), by size rather than capacity, so
// that a copy counts as much as its original.
size_t ApproximateJsonBytes(const Json& json);

// True if every string and key in `json` is valid UTF-8 (as JSON, and the
// protobuf Value a client receives, require).
bool JsonIsValidUtf8(const Json& json);

// What a caller asks for. Immutable once the task is created.
struct TaskSpec {
  std::string function;
  Json args;
  std::string input;
  // Empty: the function's default pool. Resolved by Executor::Submit.
  std::string pool;
  // Higher runs first; FIFO within a priority.
  int32_t priority = 0;
  // Runs allowed when a worker dies (process pools). Next to `priority`:
  // two int32s share 8 bytes, and a kept task holds its spec.
  int32_t max_attempts = 1;
  // Infinite: no limit.
  absl::Duration queue_timeout = absl::InfiniteDuration();
  absl::Duration run_timeout = absl::InfiniteDuration();
  std::map<std::string, std::string> labels;
  // Zero: the server's default retention.
  absl::Duration ttl = absl::ZeroDuration();
  // The principal that submitted the task; empty on a server without
  // authentication. Set by Executor::Submit from its Caller.
  std::string owner;

  // Bytes held: the struct and what it points to on the heap (args, input,
  // labels, names), as ApproximateJsonBytes counts them. For the memory
  // budget: every task keeps its spec until it is forgotten.
  size_t ApproximateBytes() const;
};

// Why a task did not succeed; `code` kOk means no error.
struct TaskError {
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;
};

// What a terminal task produced. Immutable once published; shared by every
// snapshot of the task.
struct TaskOutcome {
  Json result;
  std::string output;
  TaskError error;

  // Bytes held, as TaskSpec::ApproximateBytes counts them, with the
  // outcome's own chunk.
  size_t ApproximateBytes() const;
};

// A consistent copy of a task's state, cheap to make: the spec and the
// outcome are shared, not copied.
struct TaskSnapshot {
  std::string id;
  // Where the task stands in List's order (see Task::list_position).
  uint64_t list_position = 0;
  std::shared_ptr<const TaskSpec> spec;
  TaskState state = TaskState::kQueued;
  int32_t attempt = 0;
  bool cancel_requested = false;
  absl::Time created_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  // Null until the task is terminal.
  std::shared_ptr<const TaskOutcome> outcome;
};

// Called once, with the terminal snapshot, when a task ends.
using DoneCallback = std::function<void(const TaskSnapshot&)>;

// Told when tasks end, without an allocation per task: one listener serves
// many tasks and tells them apart by the tag it gave each (see
// Executor::Submit). A task holds its listener by a plain pointer until it
// calls OnTaskDone, exactly once, on the thread that ends the task, outside
// the task's lock; it must not block. The listener must outlive that call.
class DoneListener {
 public:
  virtual void OnTaskDone(uint64_t tag, const TaskSnapshot& task) = 0;

 protected:
  ~DoneListener() = default;
};

// One submitted task. The state machine lives here: exactly one transition
// into a terminal state ever succeeds, whoever races for it (worker, cancel,
// timer, shutdown).
//
// Thread-safe. Shared (std::shared_ptr, made with std::make_shared: the
// snapshots' spec points into the task) by the task table, a pool queue and
// timers; done callbacks run on the thread that finishes the task (or adds a
// callback to a finished one), outside the task's lock.
//
// The task holds its spec by value and its times as integers: a finished
// task is kept for minutes in the table, so its size is the server's memory
// per retained task.
class Task : public std::enable_shared_from_this<Task> {
 public:
  Task(std::string id, uint64_t list_position, TaskSpec spec, absl::Time now);
  Task(std::string id, uint64_t list_position,
       std::shared_ptr<const TaskSpec> spec, absl::Time now)
      : Task(std::move(id), list_position, TaskSpec(*spec), now) {}
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  // Bytes a task with `spec` holds in the server before it ends: its chunk
  // (the Task and make_shared's control block), its id, its entries in the
  // task table, and its spec's heap. What the memory budget charges a
  // queued or running task; a finished one adds its outcome.
  static size_t HeldBytes(const TaskSpec& spec);

  const std::string& id() const { return id_; }
  // The task's place in the order List shows tasks in (oldest first): the
  // executor numbers the tasks it accepts 1, 2, 3, ... Ids are random and
  // say nothing of it; the task table orders its tasks by this for List.
  uint64_t list_position() const { return list_position_; }
  const TaskSpec& spec() const { return spec_; }
  const CancellationToken& cancellation() const { return token_; }
  absl::Time created_at() const { return FromNanos(created_at_); }

  // QUEUED -> RUNNING and counts an attempt. False if the task is terminal.
  bool MarkRunning(absl::Time now);

  // RUNNING -> QUEUED, for another attempt after its worker died. False (and
  // nothing changes) unless the task is RUNNING attempt `attempt`.
  bool Requeue(int32_t attempt);

  // What Finish hands back: the done callbacks to run, and the snapshot to
  // give them. The caller runs them (RunCallbacks) after its own
  // bookkeeping, outside every lock, so that callbacks see it done.
  struct Completion {
    // QUEUED or RUNNING: the state the task left.
    TaskState previous_state = TaskState::kQueued;
    // When the task last started (InfinitePast if it never did) and ended.
    absl::Time started_at = absl::InfinitePast();
    absl::Time finished_at = absl::InfinitePast();
    // Filled only when there is someone to tell.
    TaskSnapshot snapshot;
    DoneListener* listener = nullptr;
    uint64_t listener_tag = 0;
    // In the order they were added.
    std::forward_list<DoneCallback> callbacks;
    // Tells the listener, then the callbacks.
    void RunCallbacks() const;
  };

  // Moves the task into terminal `state` with `outcome`. Returns nothing
  // (and changes nothing) if it was already terminal, or if `only_from` is
  // given and the task is not in that state (or, with `only_attempt` > 0,
  // not in that attempt): timers use these so that a stale timer never ends
  // a task for the wrong reason. Sets the cancellation token so that a
  // function still running learns that its result is not wanted.
  // With `publish` false, nobody is told yet: the completion has no one to
  // tell, and the listener and every callback (even one added after this)
  // wait for Publish() (a durable store commits the end first).
  // REQUIRES: IsTerminal(state), outcome != nullptr.
  std::optional<Completion> Finish(
      TaskState state, std::shared_ptr<const TaskOutcome> outcome,
      absl::Time now, std::optional<TaskState> only_from = std::nullopt,
      int32_t only_attempt = 0, bool publish = true);

  // Tells of the end that Finish(publish = false) held back: returns the
  // listener and callbacks to run. REQUIRES: the task is terminal.
  Completion Publish();

  // Sets the attempt and the cancel request of a task read back from a
  // store. REQUIRES: the task is QUEUED and not shared yet.
  void Restore(int32_t attempt, bool cancel_requested);

  // Records that cancel was asked for. Returns the state the task was in.
  // The token is set by Finish, not here: the task must be terminal before
  // its function learns of the cancel, or the function's own return would
  // win the race and end it FAILED.
  TaskState RequestCancel();

  // Runs `callback` once the task is terminal: at once, on this thread, if it
  // already is.
  void AddDoneCallback(DoneCallback callback);

  // Sets the task's one listener, told before any callback. REQUIRES: the
  // task is not shared yet.
  void SetDoneListener(DoneListener* listener, uint64_t tag);

  TaskState state() const;
  int32_t attempt() const;
  // The task as its callers may see it. While an end is held back
  // (Finish with publish false, until Publish()), the task as it was before
  // that end: its state then, no finish time, no outcome. A durable store
  // has not committed that end yet, and a crash would undo it (the next
  // start runs the task again or ends it WORKER_LOST): a caller that heard
  // of it would see the task end twice.
  TaskSnapshot Snapshot() const;
  // Everything, an end held back included: what a store commits.
  TaskSnapshot FullSnapshot() const;

  // Bookkeeping that other parts keep inside the task, so that it costs
  // them no allocation or map entry per task. Each group belongs to one part,
  // which alone reads and writes it under its own synchronization (named on
  // each); the task itself never touches them.

  // The pool's: where the task sits in its queue. Guarded by the lock of the
  // pool that holds the task (TaskQueue's owner).
  struct QueueFields {
    uint64_t sequence = 0;
  };
  // The executor's.
  struct ExecutorFields {
    // Id of the timer armed for the task (0: none): its queue_timeout while
    // it is queued, its run_timeout while it runs (one slot for both, 8
    // bytes less per kept task). Swapped to 0, and the timer cancelled, when
    // the task starts, is requeued or ends. A timer that escapes (fires in a
    // race) finds its only_from condition false and does nothing.
    std::atomic<uint64_t> timer{0};
    // Where the task's events are reported (see TaskObserver); null:
    // nowhere. Set before the task is shared, then only read.
    TaskSeries* series = nullptr;
  };
  // The task table's. Guarded by the lock of the table shard that holds the
  // task.
  struct TableFields {
    int64_t expire_at_nanos = 0;  // Unix time; meaningful while `retained`
    // As counted in the budget (clamped). 32 bits, so that the flags below
    // fill what would be padding: every byte of a kept task counts (see the
    // retention target in BENCHMARKS.md).
    uint32_t retained_bytes = 0;
    bool retained = false;
    bool listed = false;  // in the table
  };

  QueueFields queue;
  ExecutorFields run;
  TableFields table;

 private:
  TaskSnapshot SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the listener and callbacks into `completion`, with a snapshot if
  // there is someone to tell.
  void TakeWaitersLocked(Completion& completion)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Times are Unix nanoseconds; kNever stands for absl::InfinitePast().
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
  static int64_t ToNanos(absl::Time time);
  static absl::Time FromNanos(int64_t nanos);

  const std::string id_;
  const TaskSpec spec_;
  const int64_t created_at_;
  const uint64_t list_position_;
  CancellationToken token_;

  mutable absl::Mutex mu_;
  TaskState state_ ABSL_GUARDED_BY(mu_) = TaskState::kQueued;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  // False between Finish(publish = false) and Publish().
  bool published_ ABSL_GUARDED_BY(mu_) = true;
  // The state that end left, shown until it is published. One byte, in
  // what would be padding.
  TaskState unpublished_from_ ABSL_GUARDED_BY(mu_) = TaskState::kQueued;
  int32_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t started_at_ ABSL_GUARDED_BY(mu_) = kNever;
  int64_t finished_at_ ABSL_GUARDED_BY(mu_) = kNever;
  std::shared_ptr<const TaskOutcome> outcome_ ABSL_GUARDED_BY(mu_);
  // Inline, not in the list: a session's submits each have a listener, and
  // a list node would be an allocation per task.
  DoneListener* listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t listener_tag_ ABSL_GUARDED_BY(mu_) = 0;
  // Newest first (a list head is one pointer; most tasks have none).
  std::forward_list<DoneCallback> done_callbacks_ ABSL_GUARDED_BY(mu_);
};

// An outcome with only an error.
std::shared_ptr<const TaskOutcome> ErrorOutcome(absl::StatusCode code,
                                                std::string message);

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TASK_H_
