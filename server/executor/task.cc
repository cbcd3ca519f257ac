#include "server/executor/task.h"

#include <utility>

#include "common/utf8.h"

namespace remex::executor {

#if defined(__x86_64__) && defined(__GLIBCXX__)
// The retention target (BENCHMARKS.md): with make_shared's control block a
// Task fills one 464-byte glibc chunk (432 before TaskSpec::owner, which
// security needs: 32 bytes more per kept task). A field that grows it needs
// a field that shrinks it: list_position_ (8 bytes) was paid for by the
// cancellation token's flag moving into its notification's tail padding.
static_assert(sizeof(Task) <= 440, "a kept task would take a larger chunk");
#endif

absl::string_view TaskStateName(TaskState state) {
  switch (state) {
    case TaskState::kQueued:
      return "QUEUED";
    case TaskState::kRunning:
      return "RUNNING";
    case TaskState::kSucceeded:
      return "SUCCEEDED";
    case TaskState::kFailed:
      return "FAILED";
    case TaskState::kCancelled:
      return "CANCELLED";
    case TaskState::kTimedOut:
      return "TIMED_OUT";
    case TaskState::kWorkerLost:
      return "WORKER_LOST";
  }
  return "STATE_UNSPECIFIED";
}

size_t ApproximateJsonBytes(const Json& json) {
  size_t bytes = sizeof(Json);
  if (json.is_string()) {
    bytes += json.get_ref<const std::string&>().capacity();
  } else if (json.is_object()) {
    for (const auto& [key, value] : json.items()) {
      bytes += key.capacity() + ApproximateJsonBytes(value);
    }
  } else if (json.is_array()) {
    for (const Json& value : json) bytes += ApproximateJsonBytes(value);
  }
  return bytes;
}

bool JsonIsValidUtf8(const Json& json) {
  if (json.is_string()) {
    return common::IsValidUtf8(json.get_ref<const std::string&>());
  }
  if (json.is_object()) {
    for (const auto& [key, value] : json.items()) {
      if (!common::IsValidUtf8(key) || !JsonIsValidUtf8(value)) return false;
    }
  } else if (json.is_array()) {
    for (const Json& value : json) {
      if (!JsonIsValidUtf8(value)) return false;
    }
  }
  return true;
}

size_t TaskSpec::ApproximateBytes() const {
  size_t bytes = sizeof(TaskSpec) + function.capacity() + input.capacity() +
                 pool.capacity() + owner.capacity() +
                 ApproximateJsonBytes(args);
  for (const auto& [key, value] : labels) {
    bytes += key.capacity() + value.capacity();
  }
  return bytes;
}

size_t TaskOutcome::ApproximateBytes() const {
  return sizeof(TaskOutcome) + output.capacity() + error.message.capacity() +
         ApproximateJsonBytes(result);
}

Task::Task(std::string id, uint64_t list_position, TaskSpec spec,
           absl::Time now)
    : id_(std::move(id)),
      spec_(std::move(spec)),
      created_at_(ToNanos(now)),
      list_position_(list_position) {}

int64_t Task::ToNanos(absl::Time time) {
  return time == absl::InfinitePast() ? kNever : absl::ToUnixNanos(time);
}

absl::Time Task::FromNanos(int64_t nanos) {
  return nanos == kNever ? absl::InfinitePast() : absl::FromUnixNanos(nanos);
}

bool Task::MarkRunning(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (state_ != TaskState::kQueued) return false;
  state_ = TaskState::kRunning;
  ++attempt_;
  started_at_ = ToNanos(now);
  return true;
}

bool Task::Requeue(int32_t attempt) {
  absl::MutexLock lock(&mu_);
  if (state_ != TaskState::kRunning || attempt_ != attempt) return false;
  state_ = TaskState::kQueued;
  return true;
}

std::optional<Task::Completion> Task::Finish(
    TaskState state, std::shared_ptr<const TaskOutcome> outcome, absl::Time now,
    std::optional<TaskState> only_from, int32_t only_attempt, bool publish) {
  Completion completion;
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(state_)) return std::nullopt;
    if (only_from.has_value() && state_ != *only_from) return std::nullopt;
    if (only_attempt > 0 && attempt_ != only_attempt) return std::nullopt;
    completion.previous_state = state_;
    unpublished_from_ = state_;
    state_ = state;
    finished_at_ = ToNanos(now);
    completion.started_at = FromNanos(started_at_);
    completion.finished_at = now;
    outcome_ = std::move(outcome);
    published_ = publish;
    if (publish) TakeWaitersLocked(completion);
  }
  token_.Cancel();
  return completion;
}

Task::Completion Task::Publish() {
  Completion completion;
  absl::MutexLock lock(&mu_);
  published_ = true;
  TakeWaitersLocked(completion);
  return completion;
}

void Task::TakeWaitersLocked(Completion& completion) {
  completion.listener = std::exchange(listener_, nullptr);
  completion.listener_tag = listener_tag_;
  completion.callbacks.swap(done_callbacks_);
  completion.callbacks.reverse();  // oldest first
  if (completion.listener != nullptr || !completion.callbacks.empty()) {
    completion.snapshot = SnapshotLocked();
  }
}

void Task::Restore(int32_t attempt, bool cancel_requested) {
  absl::MutexLock lock(&mu_);
  attempt_ = attempt;
  cancel_requested_ = cancel_requested;
}

void Task::Completion::RunCallbacks() const {
  if (listener != nullptr) listener->OnTaskDone(listener_tag, snapshot);
  for (const DoneCallback& callback : callbacks) callback(snapshot);
}

TaskState Task::RequestCancel() {
  TaskState state;
  {
    absl::MutexLock lock(&mu_);
    state = state_;
    if (!IsTerminal(state_)) cancel_requested_ = true;
  }
  return state;
}

void Task::AddDoneCallback(DoneCallback callback) {
  TaskSnapshot snapshot;
  {
    absl::MutexLock lock(&mu_);
    if (!IsTerminal(state_) || !published_) {
      done_callbacks_.push_front(std::move(callback));
      return;
    }
    snapshot = SnapshotLocked();
  }
  callback(snapshot);
}

void Task::SetDoneListener(DoneListener* listener, uint64_t tag) {
  absl::MutexLock lock(&mu_);
  listener_ = listener;
  listener_tag_ = tag;
}

TaskState Task::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

int32_t Task::attempt() const {
  absl::MutexLock lock(&mu_);
  return attempt_;
}

TaskSnapshot Task::Snapshot() const {
  absl::MutexLock lock(&mu_);
  TaskSnapshot snapshot = SnapshotLocked();
  if (!published_) {
    snapshot.state = unpublished_from_;
    snapshot.finished_at = absl::InfinitePast();
    snapshot.outcome = nullptr;
  }
  return snapshot;
}

TaskSnapshot Task::FullSnapshot() const {
  absl::MutexLock lock(&mu_);
  return SnapshotLocked();
}

TaskSnapshot Task::SnapshotLocked() const {
  TaskSnapshot snapshot;
  snapshot.id = id_;
  snapshot.list_position = list_position_;
  // Aliases the task: the spec lives in it.
  snapshot.spec = std::shared_ptr<const TaskSpec>(shared_from_this(), &spec_);
  snapshot.state = state_;
  snapshot.attempt = attempt_;
  snapshot.cancel_requested = cancel_requested_;
  snapshot.created_at = FromNanos(created_at_);
  snapshot.started_at = FromNanos(started_at_);
  snapshot.finished_at = FromNanos(finished_at_);
  snapshot.outcome = outcome_;
  return snapshot;
}

std::shared_ptr<const TaskOutcome> ErrorOutcome(absl::StatusCode code,
                                                std::string message) {
  auto outcome = std::make_shared<TaskOutcome>();
  outcome->error.code = code;
  outcome->error.message = std::move(message);
  return outcome;
}

}  // namespace remex::executor
