// remex/future.h — a handle on one task running on a remex server.
#ifndef REMEX_FUTURE_H_
#define REMEX_FUTURE_H_

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "remex/task_result.h"
#include "remex/v1/executor.pb.h"

namespace remex {

class Client;

namespace internal {
class FutureState;

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

 private:
  friend class Client;
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

}  // namespace remex

#endif  // REMEX_FUTURE_H_
