#include "remex/future.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/session.h"
#include "client/task_state.h"
#include "remex/errors.h"
#include "sdk/src/future_state.h"
#include "sdk/src/value_or_throw.h"
#include "sdk/src/watcher.h"

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

void Future::OnDone(absl::AnyInvocable<void(const Future&)> callback,
                    CallbackExecutor& executor) const {
  internal::WhenDone(state_, [self = *this, callback = std::move(callback),
                              &executor]() mutable {
    executor.Run(
        [self = std::move(self), callback = std::move(callback)]() mutable {
          callback(self);
        });
  });
}

void Future::CancelOn(std::stop_token token) const {
  std::weak_ptr<internal::FutureState> weak = state_;
  state_->KeepStopCallback(
      std::make_unique<std::stop_callback<std::function<void()>>>(
          std::move(token), [weak] {
            std::shared_ptr<internal::FutureState> state = weak.lock();
            if (state == nullptr) return;  // being destroyed
            internal::RunOnWatcher(
                [state = std::move(state)] { state->RequestCancel(); });
          }));
}

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
      if (state.Settled() && state.PollDone()) return i;
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
      if (futures[i].state_->PollDone()) return i;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return std::nullopt;
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, kLongestPause);
  }
}

}  // namespace remex

namespace remex {

Continuation<void> WhenAll(absl::Span<const Future> futures) {
  auto all = std::make_shared<internal::ContinuationState<void>>();
  if (futures.empty()) {
    all->SetValue(std::monostate());
    return internal::MakeContinuation(std::move(all));
  }
  auto left = std::make_shared<std::atomic<size_t>>(futures.size());
  for (const Future& future : futures) {
    internal::WhenDone(internal::FutureAccess::Shared(future), [all, left] {
      if (left->fetch_sub(1) == 1) all->SetValue(std::monostate());
    });
  }
  return internal::MakeContinuation(std::move(all));
}

Continuation<size_t> WhenAny(absl::Span<const Future> futures) {
  auto any = std::make_shared<internal::ContinuationState<size_t>>();
  if (futures.empty()) {
    any->SetException(std::make_exception_ptr(
        std::invalid_argument("WhenAny of no futures")));
  }
  for (size_t i = 0; i < futures.size(); ++i) {
    // Only the first set counts.
    internal::WhenDone(internal::FutureAccess::Shared(futures[i]),
                       [any, i] { any->SetValue(i); });
  }
  return internal::MakeContinuation(std::move(any));
}

struct AsCompleted::State {
  mutable absl::Mutex mu;
  std::deque<Future> done ABSL_GUARDED_BY(mu);
  size_t remaining ABSL_GUARDED_BY(mu) = 0;  // not yet yielded
};

AsCompleted::AsCompleted(absl::Span<const Future> futures)
    : state_(std::make_shared<State>()) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->remaining = futures.size();
  }
  for (const Future& future : futures) {
    internal::WhenDone(internal::FutureAccess::Shared(future),
                       [state = state_, future] {
                         absl::MutexLock lock(&state->mu);
                         state->done.push_back(future);
                       });
  }
}

std::optional<Future> AsCompleted::Next(absl::Time deadline) {
  State& state = *state_;
  absl::MutexLock lock(&state.mu);
  if (state.remaining == 0) return std::nullopt;
  const absl::Condition has_done(
      +[](State* state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
        return !state->done.empty();
      },
      &state);
  if (!state.mu.AwaitWithDeadline(has_done, deadline)) {
    return std::nullopt;
  }
  Future next = std::move(state.done.front());
  state.done.pop_front();
  --state.remaining;
  return next;
}

size_t AsCompleted::remaining() const {
  absl::MutexLock lock(&state_->mu);
  return state_->remaining;
}

}  // namespace remex
