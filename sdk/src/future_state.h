// The state shared by copies of one remex::Future.
#ifndef REMEX_SDK_SRC_FUTURE_STATE_H_
#define REMEX_SDK_SRC_FUTURE_STATE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/task_transport.h"
#include "remex/v1/executor.pb.h"

namespace remex::internal {

// Follows one task through a TaskTransport and caches the latest snapshot;
// once a terminal snapshot is seen it is kept and no more RPCs are made.
// Thread-safe; no lock is held during an RPC. Shares the transport.
class FutureState {
 public:
  // `task` is the first snapshot (from Submit or Get).
  FutureState(std::shared_ptr<client::TaskTransport> transport, v1::Task task);

  const std::string& id() const { return id_; }

  // Waits until the task is terminal or `deadline` passes; returns whether
  // it is terminal. A deadline in the past polls once.
  absl::StatusOr<bool> WaitUntil(absl::Time deadline);
  // Cancels the task and waits until it is terminal; returns whether it
  // ended CANCELLED.
  absl::StatusOr<bool> Cancel();
  v1::Task Snapshot() const;

 private:
  // True once a terminal snapshot is kept.
  bool IsDone() const;
  // Records `task` unless a terminal snapshot is already kept; returns
  // whether the kept snapshot is terminal.
  absl::StatusOr<bool> Update(const absl::StatusOr<v1::Task>& task);

  const std::string id_;
  const std::shared_ptr<client::TaskTransport> transport_;
  mutable absl::Mutex mu_;
  v1::Task task_ ABSL_GUARDED_BY(mu_);
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace remex::internal

#endif  // REMEX_SDK_SRC_FUTURE_STATE_H_
