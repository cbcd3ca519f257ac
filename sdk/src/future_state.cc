#include "sdk/src/future_state.h"

#include <utility>

#include "client/task_state.h"
#include "sdk/src/watcher.h"

namespace remex::internal {
namespace {

// How long a cancel over the session waits for its answer.
constexpr absl::Duration kCancelAnswerTimeout = absl::Seconds(30);

}  // namespace

FutureState::FutureState(std::shared_ptr<client::Connection> connection,
                         std::shared_ptr<client::Session> session,
                         std::shared_ptr<client::TaskSlot> slot, v1::Task first,
                         bool cancel_when_dropped)
    : cancel_when_dropped_(cancel_when_dropped),
      id_(first.id()),
      connection_(std::move(connection)),
      session_(std::move(session)),
      slot_(std::move(slot)),
      terminal_(client::IsTerminal(first.state())),
      unary_(slot_ == nullptr) {
  task_ = std::move(first);
}

FutureState::~FutureState() {
  if (!cancel_when_dropped_) return;
  {
    absl::MutexLock lock(&mu_);
    if (terminal_) return;
  }
  // A slot that settled with the task's end: nothing to cancel.
  if (slot_ != nullptr && slot_->settled()) {
    absl::StatusOr<v1::Task> end = slot_->Take();
    if (end.ok() || !slot_->accepted()) return;
  }
  // The slot needs its session alive: hold both.
  RunOnWatcher(
      [connection = connection_, session = session_, slot = slot_, id = id_] {
        std::string task_id = id;
        if (slot != nullptr) {
          if (!slot->WaitAccepted(absl::Now() + kCancelAnswerTimeout).ok()) {
            return;
          }
          task_id = slot->id();
        }
        (void)connection->Cancel(task_id);
      });
}

void FutureState::RequestCancel() {
  const std::string& task_id = id();
  if (task_id.empty()) return;  // the submit was refused
  if (IsDone()) return;
  (void)Update(connection_->Cancel(task_id));
}

void FutureState::KeepStopCallback(
    std::unique_ptr<std::stop_callback<std::function<void()>>> callback) {
  absl::MutexLock lock(&mu_);
  stop_callbacks_.push_back(std::move(callback));
}

const std::string& FutureState::id() const {
  if (slot_ == nullptr || !id_.empty()) return id_;
  (void)slot_->WaitAccepted(absl::InfiniteFuture());
  return slot_->id();
}

absl::StatusOr<bool> FutureState::WaitUntil(absl::Time deadline) {
  if (IsDone()) return true;
  bool unary = false;
  absl::StatusOr<bool> terminal = WaitForSlot(deadline, &unary);
  if (!unary) return terminal;
  return Update(connection_->Await(id(), deadline - absl::Now()));
}

absl::StatusOr<bool> FutureState::WaitForSlot(absl::Time deadline,
                                              bool* unary) {
  {
    absl::MutexLock lock(&mu_);
    if (unary_) {
      *unary = true;
      return false;
    }
  }
  if (!slot_->WaitSettled(deadline)) return false;
  absl::MutexLock lock(&mu_);
  if (terminal_) return true;
  if (unary_) {
    *unary = true;
    return false;
  }
  absl::StatusOr<v1::Task> task = slot_->Take();
  if (task.ok()) {
    task_ = *std::move(task);
    terminal_ = true;
    return true;
  }
  if (!slot_->accepted()) {
    return task.status();  // the submit was refused (or never answered)
  }
  unary_ = true;  // accepted, then the stream broke
  *unary = true;
  return false;
}

absl::StatusOr<bool> FutureState::Cancel() {
  if (!IsDone()) {
    bool terminal = false;
    if (session_ != nullptr) {
      const std::string& task_id = id();
      if (task_id.empty()) return WaitUntil(absl::InfinitePast());
      absl::Status status =
          session_->Cancel(task_id, absl::Now() + kCancelAnswerTimeout);
      if (!status.ok()) return status;
    } else {
      absl::StatusOr<bool> updated = Update(connection_->Cancel(id_));
      if (!updated.ok()) return updated.status();
      terminal = *updated;
    }
    if (!terminal) {
      absl::StatusOr<bool> waited = WaitUntil(absl::InfiniteFuture());
      if (!waited.ok()) return waited.status();
    }
  }
  return Snapshot().state() == v1::CANCELLED;
}

v1::Task FutureState::Snapshot() const {
  v1::Task task;
  {
    absl::MutexLock lock(&mu_);
    task = task_;
  }
  // A session submit's id exists (and may be read) once it is accepted. A
  // terminal snapshot has its id, so a waited-on future never asks.
  if (task.id().empty() && slot_ != nullptr && slot_->accepted()) {
    task.set_id(slot_->id());
  }
  return task;
}

bool FutureState::PollDone() {
  const absl::StatusOr<bool> terminal = WaitUntil(absl::InfinitePast());
  return !terminal.ok() || *terminal;
}

bool FutureState::Settled() const {
  {
    absl::MutexLock lock(&mu_);
    if (terminal_) return true;
    if (unary_) return false;
  }
  return slot_->settled();
}

client::TaskSlot* FutureState::PendingSlot() const {
  absl::MutexLock lock(&mu_);
  return terminal_ || unary_ ? nullptr : slot_.get();
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
