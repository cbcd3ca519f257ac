#include "server/executor/task.h"

#include <algorithm>
#include <utility>

#include "common/ids.h"
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

namespace {

// What glibc's malloc takes for a request of `bytes`: an 8-byte header,
// rounded up to 16, at least 32.
constexpr size_t HeapChunk(size_t bytes) {
  return bytes == 0 ? 0 : std::max<size_t>(32, (bytes + 8 + 15) & ~size_t{15});
}

// The heap chunk of a string's characters; none while they fit inline
// (libstdc++ keeps up to 15 in the string).
size_t StringHeapBytes(const std::string& text) {
  return text.size() < 16 ? 0 : HeapChunk(text.size() + 1);
}

// A std::map node: its links and color (32 bytes), then the value.
template <typename Value>
constexpr size_t kMapNodeBytes = HeapChunk(32 + sizeof(Value));

}  // namespace

size_t ApproximateJsonBytes(const Json& json) {
  switch (json.type()) {
    case Json::value_t::string:
      return HeapChunk(sizeof(std::string)) +
             StringHeapBytes(json.get_ref<const std::string&>());
    case Json::value_t::object: {
      const auto& object = json.get_ref<const Json::object_t&>();
      size_t bytes = HeapChunk(sizeof(Json::object_t));
      for (const auto& [key, value] : object) {
        bytes += kMapNodeBytes<Json::object_t::value_type> +
                 StringHeapBytes(key) + ApproximateJsonBytes(value);
      }
      return bytes;
    }
    case Json::value_t::array: {
      const auto& array = json.get_ref<const Json::array_t&>();
      size_t bytes = HeapChunk(sizeof(Json::array_t)) +
                     HeapChunk(array.size() * sizeof(Json));
      for (const Json& value : array) bytes += ApproximateJsonBytes(value);
      return bytes;
    }
    case Json::value_t::binary:
      return HeapChunk(sizeof(Json::binary_t)) +
             HeapChunk(json.get_binary().size());
    default:
      return 0;
  }
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
  size_t bytes = sizeof(TaskSpec) + StringHeapBytes(function) +
                 StringHeapBytes(input) + StringHeapBytes(pool) +
                 StringHeapBytes(owner) + ApproximateJsonBytes(args);
  for (const auto& [key, value] : labels) {
    bytes += kMapNodeBytes<std::pair<const std::string, std::string>> +
             StringHeapBytes(key) + StringHeapBytes(value);
  }
  return bytes;
}

size_t TaskOutcome::ApproximateBytes() const {
  // make_shared's control block (16 bytes) shares the outcome's chunk.
  return HeapChunk(16 + sizeof(TaskOutcome)) + StringHeapBytes(output) +
         StringHeapBytes(error.message) + ApproximateJsonBytes(result);
}

size_t Task::HeldBytes(const TaskSpec& spec) {
  // The Task's chunk holds the spec's struct; the table's indexes take
  // about 30 bytes a task (see TaskTable).
  constexpr size_t kFixed = HeapChunk(16 + sizeof(Task)) - sizeof(TaskSpec) +
                            HeapChunk(common::kTaskIdSize + 1) + 32;
  return kFixed + spec.ApproximateBytes();
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
