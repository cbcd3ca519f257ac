#include "remex/future.h"

#include <utility>

#include "client/task_state.h"
#include "remex/errors.h"
#include "sdk/src/future_state.h"
#include "sdk/src/value_or_throw.h"

namespace remex {

using internal::ValueOrThrow;

bool IsTerminal(v1::State state) { return client::IsTerminal(state); }

Future::Future(std::shared_ptr<internal::FutureState> state)
    : state_(std::move(state)) {}

const std::string& Future::id() const { return state_->id(); }

TaskResult Future::get() const {
  wait();
  v1::Task task = state_->Snapshot();
  if (task.state() != v1::SUCCEEDED) throw TaskError(task);
  return TaskResult(std::move(task));
}

absl::StatusOr<TaskResult> Future::result() const {
  const absl::StatusOr<bool> terminal =
      state_->WaitUntil(absl::InfiniteFuture());
  if (!terminal.ok()) return terminal.status();
  v1::Task task = state_->Snapshot();
  absl::Status status = client::TaskStatus(task);
  if (!status.ok()) return status;
  return TaskResult(std::move(task));
}

void Future::wait() const { wait_until(absl::InfiniteFuture()); }

std::future_status Future::wait_for(absl::Duration timeout) const {
  return wait_until(absl::Now() + timeout);
}

std::future_status Future::wait_until(absl::Time deadline) const {
  return ValueOrThrow(state_->WaitUntil(deadline))
             ? std::future_status::ready
             : std::future_status::timeout;
}

bool Future::ready() const {
  return ValueOrThrow(state_->WaitUntil(absl::InfinitePast()));
}

bool Future::cancel() const { return ValueOrThrow(state_->Cancel()); }

v1::Task Future::task() const { return state_->Snapshot(); }

}  // namespace remex
