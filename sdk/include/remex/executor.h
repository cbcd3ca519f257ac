// remex/executor.h — where the SDK runs the callbacks that callers give it.
//
// Done-callbacks and continuations (Future::OnDone, Future::Then,
// Continuation::Then) never run on the threads that read gRPC's streams:
// the SDK hands each one to a CallbackExecutor that the caller chooses.
#ifndef REMEX_EXECUTOR_H_
#define REMEX_EXECUTOR_H_

#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace remex {

// Runs callbacks somewhere the caller chooses (a thread pool, an event
// loop, ...). Implementations must be thread-safe: Run is called from the
// SDK's watcher thread, from the thread that adds a callback to something
// already done, and from any thread that completes a Continuation. Run must
// not throw and should return soon: queue the callback rather than run it
// inline (inline, it would run on the SDK's watcher thread and hold up
// every other callback, and the cancels of dropped futures). Whoever hands an
// executor to the SDK keeps it alive until every callback given to it has
// been run.
class CallbackExecutor {
 public:
  virtual ~CallbackExecutor() = default;
  virtual void Run(absl::AnyInvocable<void()> callback) = 0;
};

// A CallbackExecutor that owns one thread and runs callbacks on it one at a
// time, in the order they were handed over. Thread-safe. The destructor
// runs the callbacks already queued, then joins the thread; a callback
// handed over after that starts is dropped, so destroy it only once the
// futures it serves are done (or their callbacks no longer matter).
// A callback may block (e.g. on another future), but that holds up the
// callbacks queued behind it; one that throws ends the process (as on a
// std::thread). Do not destroy the executor from one of its callbacks.
class ThreadExecutor : public CallbackExecutor {
 public:
  ThreadExecutor();
  ~ThreadExecutor() override;
  ThreadExecutor(const ThreadExecutor&) = delete;
  ThreadExecutor& operator=(const ThreadExecutor&) = delete;

  void Run(absl::AnyInvocable<void()> callback) override;

  // The thread that runs the callbacks.
  std::thread::id thread_id() const { return thread_.get_id(); }

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the fields it reads
};

}  // namespace remex

#endif  // REMEX_EXECUTOR_H_
