// remex/future.h — a handle on one task running on a remex server.
#ifndef REMEX_FUTURE_H_
#define REMEX_FUTURE_H_

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "remex/continuation.h"
#include "remex/executor.h"
#include "remex/task_result.h"
#include "remex/v1/executor.pb.h"

namespace remex {

class Client;
class Future;

namespace internal {
class FutureState;
struct FutureAccess;

// `timeout` as an absl::Duration, rounded up; huge values become infinite.
template <class Rep, class Period>
absl::Duration ToAbslDuration(
    const std::chrono::duration<Rep, Period>& timeout) {
  constexpr double kLongestFiniteSeconds = 1e12;
  const double seconds = std::chrono::duration<double>(timeout).count();
  if (seconds > kLongestFiniteSeconds) return absl::InfiniteDuration();
  if (seconds < -kLongestFiniteSeconds) return -absl::InfiniteDuration();
  return absl::FromChrono(std::chrono::ceil<std::chrono::nanoseconds>(timeout));
}
}  // namespace internal

// True for the terminal states: SUCCEEDED, FAILED, CANCELLED, TIMED_OUT and
// WORKER_LOST.
bool IsTerminal(v1::State state);

// The eventual outcome of a task, like std::shared_future: copies share one
// state, and once the task is known to be terminal that snapshot is kept, so
// later calls make no RPC. Thread-safe: any number of threads may call any
// method on the same or on copied futures. A default-constructed Future is
// not valid(); every other method REQUIRES: valid().
//
// Methods that talk to the server throw RpcError when that fails (server
// unreachable, task forgotten → NOT_FOUND, ...); result() returns it instead.
class Future {
 public:
  Future() = default;

  const std::string& id() const;
  bool valid() const { return state_ != nullptr; }

  // Blocks until the task is terminal. Returns its result if it SUCCEEDED;
  // throws TaskError if it ended otherwise.
  TaskResult get() const;
  // Like get(), but never throws: a task that did not succeed gives a status
  // with the task's error code and message; a failed RPC gives its status.
  absl::StatusOr<TaskResult> result() const;

  // Blocks until the task is terminal.
  void wait() const;
  // Blocks until the task is terminal (ready) or `timeout` passed (timeout).
  std::future_status wait_for(absl::Duration timeout) const;
  std::future_status wait_until(absl::Time deadline) const;
  template <class Rep, class Period>
  std::future_status wait_for(
      const std::chrono::duration<Rep, Period>& timeout) const {
    return wait_for(internal::ToAbslDuration(timeout));
  }
  template <class Clock, class Duration>
  std::future_status wait_until(
      const std::chrono::time_point<Clock, Duration>& deadline) const {
    if (deadline == std::chrono::time_point<Clock, Duration>::max()) {
      return wait_until(absl::InfiniteFuture());
    }
    return wait_for(deadline - Clock::now());
  }

  // Non-blocking poll: true if the task is terminal (asks the server unless
  // that is already known).
  bool ready() const;

  // Asks the server to cancel the task and blocks until it is terminal
  // (a running thread-pool task stops when it next checks for cancellation).
  // Returns true iff the task ended CANCELLED (also when an earlier cancel
  // did that); false if it ended otherwise, e.g. finished first.
  bool cancel() const;

  // The latest snapshot of the task this future has seen (no RPC).
  v1::Task task() const;

  // Runs `callback(*this)` on `executor` once the future is done (the task
  // is terminal, or following it failed: get() and result() then say how),
  // and soon if it is done already. The SDK never calls `callback` itself,
  // so it never runs on gRPC's threads: it hands it to executor.Run, from
  // this call if the future is known to be done already, else from the
  // SDK's watcher thread (one per process). The thread that reads the
  // task's end off the session's stream (a caller waiting on that session,
  // or the session's own thread when nobody does) only tells the watcher,
  // which hands the callback over at once, after those ahead of it: the
  // cost of a task's end does not grow with the number of callbacks
  // pending, on any number of Clients. Futures without a session (or
  // whose session broke) are polled, one RPC each per 20 ms.
  // The watch keeps the future's state (and its connection) alive until
  // the task is done; callbacks still pending when the process exits never
  // run. An exception escaping `callback` is the executor's to handle.
  // REQUIRES: `executor` outlives the call to its Run.
  void OnDone(absl::AnyInvocable<void(const Future&)> callback,
              CallbackExecutor& executor) const;

  // Runs `f(*this)` on `executor` once the future is done (as OnDone); the
  // returned continuation gets what f returns, or the exception it throws
  // (f's get() throws TaskError or RpcError for a task that did not
  // succeed, so errors flow down a chain of Then unless f catches them).
  template <class F>
  auto Then(F f, CallbackExecutor& executor) const
      -> Continuation<std::invoke_result_t<F&, const Future&>> {
    using R = std::invoke_result_t<F&, const Future&>;
    auto next = std::make_shared<internal::ContinuationState<R>>();
    OnDone(
        [next, f = std::move(f)](const Future& done) mutable {
          auto call = [&]() -> R { return f(done); };
          next->SetFrom(call);
        },
        executor);
    return internal::MakeContinuation(std::move(next));
  }

  // Asks the server to cancel the task once `token` is stopped (at once if
  // it is already): request_stop() hands the cancel to the watcher thread
  // and returns without waiting for it; the future then ends CANCELLED
  // (unless the task ended first). The link lasts as long as a copy of
  // this future does. May be called more than once, with several tokens.
  void CancelOn(std::stop_token token) const;

 private:
  friend class Client;
  friend struct internal::FutureAccess;
  friend std::optional<size_t> WaitAny(absl::Span<const Future> futures,
                                       absl::Time deadline);
  explicit Future(std::shared_ptr<internal::FutureState> state);

  std::shared_ptr<internal::FutureState> state_;
};

// Blocks until one of `futures` is done or `deadline` passes. Returns the
// index of a done future, the lowest if several are; nullopt if the
// deadline passed first or `futures` is empty. Done: the task is terminal,
// or following it failed (its submit was refused, the server cannot be
// reached), which get() and result() then report. Like Python's
// concurrent.futures.wait(return_when=FIRST_COMPLETED) or ray.wait: call it
// again without the returned future to take results in the order they end.
//
// Futures of one Client's session (the default) are waited on together
// with no RPC. Others (ClientOptions::use_session = false, several
// clients, or a session that broke) are polled as ready() polls, pausing
// up to 50 ms between rounds. Never throws. REQUIRES: every future valid().
std::optional<size_t> WaitAny(absl::Span<const Future> futures,
                              absl::Time deadline = absl::InfiniteFuture());

// Combinators that do not block: each watches `futures` as OnDone does (on
// the SDK's watcher thread, never making callers wait) and keeps them
// alive until they are done. A future is done as WaitAny says: its task is
// terminal, or following it failed; inspect each with get() or result().
// Thread-safe. REQUIRES: every future valid().

// Set (with no value) once every one of `futures` is done, whether it
// succeeded or not; at once if `futures` is empty.
Continuation<void> WhenAll(absl::Span<const Future> futures);

// Set to the index of the first of `futures` seen done (when several are
// done already, which one is unspecified). Holds std::invalid_argument if
// `futures` is empty.
Continuation<size_t> WhenAny(absl::Span<const Future> futures);

// Yields `futures` in the order they become done:
//   remex::AsCompleted done(futures);
//   while (std::optional<remex::Future> next = done.Next()) use(next->get());
// Thread-safe: several threads may call Next on one AsCompleted (each
// future is yielded once). Movable, not copyable.
class AsCompleted {
 public:
  explicit AsCompleted(absl::Span<const Future> futures);

  // The next future to become done, waiting until `deadline` for it;
  // nullopt once every future was yielded, or if the deadline passed.
  std::optional<Future> Next(absl::Time deadline = absl::InfiniteFuture());
  // How many futures Next has not yielded yet.
  size_t remaining() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace remex

#endif  // REMEX_FUTURE_H_
