#include "sdk/src/future_state.h"

#include <utility>

#include "client/task_state.h"

namespace remex::internal {

FutureState::FutureState(std::shared_ptr<client::TaskTransport> transport,
                         v1::Task task)
    : id_(task.id()), transport_(std::move(transport)) {
  terminal_ = client::IsTerminal(task.state());
  task_ = std::move(task);
}

absl::StatusOr<bool> FutureState::WaitUntil(absl::Time deadline) {
  if (IsDone()) return true;
  return Update(transport_->Await(id_, deadline - absl::Now()));
}

absl::StatusOr<bool> FutureState::Cancel() {
  if (!IsDone()) {
    absl::StatusOr<bool> terminal = Update(transport_->Cancel(id_));
    if (!terminal.ok()) return terminal.status();
    if (!*terminal) {
      terminal = WaitUntil(absl::InfiniteFuture());
      if (!terminal.ok()) return terminal.status();
    }
  }
  return Snapshot().state() == v1::CANCELLED;
}

v1::Task FutureState::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return task_;
}

bool FutureState::IsDone() const {
  absl::MutexLock lock(&mu_);
  return terminal_;
}

absl::StatusOr<bool> FutureState::Update(const absl::StatusOr<v1::Task>& task) {
  if (!task.ok()) return task.status();
  absl::MutexLock lock(&mu_);
  if (!terminal_) {
    task_ = *task;
    terminal_ = client::IsTerminal(task_.state());
  }
  return terminal_;
}

}  // namespace remex::internal
