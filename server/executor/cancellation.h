// Cooperative cancellation.
#ifndef REMEX_SERVER_EXECUTOR_CANCELLATION_H_
#define REMEX_SERVER_EXECUTOR_CANCELLATION_H_

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace remex::executor {

// A flag that a task's function polls (or waits on) to learn that its task
// was cancelled or timed out. Set once; never reset.
//
// Thread-safe. Owned by the task; functions get a const reference that is
// valid for the duration of their call.
class CancellationToken {
 public:
  CancellationToken() = default;
  CancellationToken(const CancellationToken&) = delete;
  CancellationToken& operator=(const CancellationToken&) = delete;

  // Sets the token. Idempotent.
  void Cancel() {
    if (!cancelled_.exchange(true, std::memory_order_acq_rel)) {
      notification_.Notify();
    }
  }

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Blocks until the token is set or `timeout` passes. Returns cancelled().
  bool WaitFor(absl::Duration timeout) const {
    return notification_.WaitForNotificationWithTimeout(timeout);
  }

 private:
  // The flag sits in the notification's tail padding: 16 bytes instead of
  // 24 in every task (see the size of Task in task.cc).
  [[no_unique_address]] absl::Notification notification_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_CANCELLATION_H_
