// remex/continuation.h — the result of a callback that runs once a task (or
// another continuation) is done: what Future::Then and Continuation::Then
// return, and what WhenAll and WhenAny complete.
#ifndef REMEX_CONTINUATION_H_
#define REMEX_CONTINUATION_H_

#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "remex/executor.h"

namespace remex {

template <class T>
class Continuation;

namespace internal {

// A value of T, or std::monostate for void.
template <class T>
using StoredValue = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// The state shared by copies of one Continuation<T>: set once, with a value
// or an exception. Thread-safe. Actions added with AddOnDone run once it is
// set, on the thread that sets it (or at once, on the adding thread, if it
// is set already); they must be short and must not throw (the SDK's only
// hand the caller's callback to its executor).
template <class T>
class ContinuationState {
 public:
  void SetValue(StoredValue<T> value) {
    Finish([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      value_.emplace(std::move(value));
    });
  }
  void SetException(std::exception_ptr error) {
    Finish([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { error_ = error; });
  }
  // Sets what `f()` returns, or the exception it throws.
  template <class F>
  void SetFrom(F& f) {
    try {
      if constexpr (std::is_void_v<T>) {
        f();
        SetValue(std::monostate());
      } else {
        SetValue(f());
      }
    } catch (...) {
      SetException(std::current_exception());
    }
  }

  void AddOnDone(absl::AnyInvocable<void()> action) {
    {
      absl::MutexLock lock(&mu_);
      if (!done_) {
        on_done_.push_back(std::move(action));
        return;
      }
    }
    action();
  }

  bool WaitUntil(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(&done_), deadline);
  }
  bool done() const {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  // REQUIRES: done(). The value, or throws the exception.
  const StoredValue<T>& Get() const {
    absl::MutexLock lock(&mu_);
    if (error_ != nullptr) std::rethrow_exception(error_);
    return *value_;  // never changes once set
  }

 private:
  template <class Set>
  void Finish(Set set) {
    std::vector<absl::AnyInvocable<void()>> actions;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;  // set once; later sets are ignored
      set();
      done_ = true;
      actions.swap(on_done_);
    }
    for (absl::AnyInvocable<void()>& action : actions) action();
  }

  mutable absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<StoredValue<T>> value_ ABSL_GUARDED_BY(mu_);
  std::exception_ptr error_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void()>> on_done_ ABSL_GUARDED_BY(mu_);
};

template <class T>
Continuation<T> MakeContinuation(std::shared_ptr<ContinuationState<T>> state);

}  // namespace internal

// The eventual value (or exception) of a callback that the SDK runs on a
// CallbackExecutor once something is done; like std::shared_future<T>:
// copies share one state, which is set once. T may be void.
//
// Thread-safe: any number of threads may call any method on the same or on
// copied continuations. A default-constructed Continuation is not valid();
// every other method REQUIRES: valid(). The state lives as long as a copy,
// or a callback that will set it, does: dropping every copy does not stop
// the callback.
template <class T>
class Continuation {
 public:
  Continuation() = default;

  bool valid() const { return state_ != nullptr; }

  // Blocks until set. Returns the value (nothing for void) as a const
  // reference, valid while a copy of this continuation exists; or rethrows
  // the exception that the callback threw.
  decltype(auto) get() const {
    wait();
    if constexpr (std::is_void_v<T>) {
      state_->Get();
    } else {
      return static_cast<const T&>(state_->Get());
    }
  }
  void wait() const { state_->WaitUntil(absl::InfiniteFuture()); }
  std::future_status wait_for(absl::Duration timeout) const {
    return state_->WaitUntil(absl::Now() + timeout)
               ? std::future_status::ready
               : std::future_status::timeout;
  }
  // True once set; never blocks.
  bool ready() const { return state_->done(); }

  // Runs `callback(*this)` on `executor` once this is set (soon, if it is
  // already). An exception escaping `callback` is the executor's to handle
  // (ThreadExecutor's ends the process, as std::thread's does).
  void OnDone(absl::AnyInvocable<void(const Continuation&)> callback,
              CallbackExecutor& executor) const {
    state_->AddOnDone(
        [self = *this, callback = std::move(callback), &executor]() mutable {
          executor.Run(
              [self = std::move(self),
               callback = std::move(callback)]() mutable { callback(self); });
        });
  }

  // Runs `f(*this)` on `executor` once this is set; the returned
  // continuation gets what f returns, or what it throws (f's get() rethrows
  // this one's exception, so errors flow down a chain unless f catches).
  template <class F>
  auto Then(F f, CallbackExecutor& executor) const
      -> Continuation<std::invoke_result_t<F&, const Continuation&>> {
    using R = std::invoke_result_t<F&, const Continuation&>;
    auto next = std::make_shared<internal::ContinuationState<R>>();
    OnDone(
        [next, f = std::move(f)](const Continuation& done) mutable {
          auto call = [&]() -> R { return f(done); };
          next->SetFrom(call);
        },
        executor);
    return internal::MakeContinuation(std::move(next));
  }

 private:
  friend Continuation internal::MakeContinuation<T>(
      std::shared_ptr<internal::ContinuationState<T>> state);
  explicit Continuation(std::shared_ptr<internal::ContinuationState<T>> state)
      : state_(std::move(state)) {}

  std::shared_ptr<internal::ContinuationState<T>> state_;
};

namespace internal {
template <class T>
Continuation<T> MakeContinuation(std::shared_ptr<ContinuationState<T>> state) {
  return Continuation<T>(std::move(state));
}
}  // namespace internal

}  // namespace remex

#endif  // REMEX_CONTINUATION_H_
