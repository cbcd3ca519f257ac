#include "remex/future.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "client/session.h"
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

namespace {

// Polls once; true if the future is done. An error (a refused submit, a
// failed RPC) counts as done: get() and result() report it.
bool PollDone(internal::FutureState& state) {
  const absl::StatusOr<bool> terminal = state.WaitUntil(absl::InfinitePast());
  return !terminal.ok() || *terminal;
}

}  // namespace

std::optional<size_t> WaitAny(absl::Span<const Future> futures,
                              absl::Time deadline) {
  constexpr absl::Duration kLongestPause = absl::Milliseconds(50);
  absl::Duration pause = absl::Milliseconds(1);
  std::vector<client::TaskSlot*> slots;
  for (;;) {
    // Done already? A settled slot may still need an RPC (the stream broke
    // after acceptance): PollDone then follows the task by RPCs.
    for (size_t i = 0; i < futures.size(); ++i) {
      internal::FutureState& state = *futures[i].state_;
      if (state.Settled() && PollDone(state)) return i;
    }
    if (futures.empty()) return std::nullopt;
    // All followed by one session: wait on it, without RPCs.
    slots.clear();
    client::Session* session = nullptr;
    for (const Future& future : futures) {
      client::TaskSlot* slot = future.state_->PendingSlot();
      client::Session* owner = future.state_->session();
      if (slot == nullptr || (session != nullptr && owner != session)) {
        session = nullptr;
        break;
      }
      session = owner;
      slots.push_back(slot);
    }
    if (session != nullptr) {
      if (!session->WaitAnySettled(slots, deadline)) return std::nullopt;
      continue;
    }
    for (size_t i = 0; i < futures.size(); ++i) {
      if (PollDone(*futures[i].state_)) return i;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return std::nullopt;
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, kLongestPause);
  }
}

}  // namespace remex
