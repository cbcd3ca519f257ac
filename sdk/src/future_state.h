// The state shared by copies of one remex::Future.
#ifndef REMEX_SDK_SRC_FUTURE_STATE_H_
#define REMEX_SDK_SRC_FUTURE_STATE_H_

#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/session.h"
#include "remex/future.h"
#include "remex/v1/executor.pb.h"

namespace remex::internal {

// Follows one task and caches the latest snapshot; once a terminal snapshot
// is seen it is kept and no more RPCs are made. A task followed by a session
// slot needs no RPC to wait: the session delivers its end. A task without a
// slot, or whose session broke after it was accepted, is followed with
// unary RPCs over the connection.
// Thread-safe; no lock is held during an RPC. Shares the connection, the
// session and the slot.
class FutureState {
 public:
  // Follows `first` (a task from Submit or Get, or the snapshot to show
  // until a session submit is answered). With a `slot` (a submit or watch of
  // `session`, which may still wait for its answer) the session delivers the
  // end; without one (`session` and `slot` null) unary RPCs follow the task.
  FutureState(std::shared_ptr<client::Connection> connection,
              std::shared_ptr<client::Session> session,
              std::shared_ptr<client::TaskSlot> slot, v1::Task first,
              bool cancel_when_dropped = false);
  // With cancel_when_dropped, cancels a task not known to be terminal (on
  // the watcher thread; does not wait).
  ~FutureState();
  FutureState(const FutureState&) = delete;
  FutureState& operator=(const FutureState&) = delete;

  // Waits for the submit's answer if needed; empty if it was refused.
  // (Known at once for a watched task.)
  const std::string& id() const;

  // Waits until the task is terminal or `deadline` passes; returns whether
  // it is terminal. A deadline in the past polls once. A refused submit is
  // its error.
  absl::StatusOr<bool> WaitUntil(absl::Time deadline);
  // Polls once; true if the task is done. Never blocks on a settled slot;
  // one RPC for a task followed by RPCs. An error (a refused submit, a
  // failed RPC) counts as done: get() and result() report it.
  bool PollDone();
  // Cancels the task and waits until it is terminal; returns whether it
  // ended CANCELLED.
  absl::StatusOr<bool> Cancel();
  v1::Task Snapshot() const;
  // Asks the server to cancel the task, without waiting for it to end
  // (one RPC; waits for the submit's answer first). Errors are ignored:
  // the future reports the task's end as usual.
  void RequestCancel();
  // Keeps `callback` registered on its token as long as this state lives.
  void KeepStopCallback(
      std::unique_ptr<std::stop_callback<std::function<void()>>> callback);

  // For WaitAny; neither blocks nor makes an RPC. True if WaitUntil would
  // return at once without an RPC: the task is known to be terminal, or its
  // slot has settled.
  bool Settled() const;
  // The slot whose settling ends the wait, if the task is still followed
  // by the session; null otherwise.
  client::TaskSlot* PendingSlot() const;
  client::Session* session() const { return session_.get(); }

 private:
  // True once a terminal snapshot is kept.
  bool IsDone() const;
  // Records `task` unless a terminal snapshot is already kept; returns
  // whether the kept snapshot is terminal.
  absl::StatusOr<bool> Update(const absl::StatusOr<v1::Task>& task);
  // Waits on the slot. Sets *unary if the task must be followed by RPCs.
  absl::StatusOr<bool> WaitForSlot(absl::Time deadline, bool* unary);

  const bool cancel_when_dropped_;
  const std::string id_;
  const std::shared_ptr<client::Connection> connection_;
  const std::shared_ptr<client::Session> session_;
  const std::shared_ptr<client::TaskSlot> slot_;
  mutable absl::Mutex mu_;
  v1::Task task_ ABSL_GUARDED_BY(mu_);
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
  // Follow the task with RPCs: it has no slot, or the session broke after
  // acceptance.
  bool unary_ ABSL_GUARDED_BY(mu_);
  // Last: unregistered first, before the fields their callbacks read.
  std::vector<std::unique_ptr<std::stop_callback<std::function<void()>>>>
      stop_callbacks_ ABSL_GUARDED_BY(mu_);
};

// Lets the SDK's sources make and open Futures.
struct FutureAccess {
  static Future Make(std::shared_ptr<FutureState> state) {
    return Future(std::move(state));
  }
  static FutureState& State(const Future& future) { return *future.state_; }
  static const std::shared_ptr<FutureState>& Shared(const Future& future) {
    return future.state_;
  }
};

}  // namespace remex::internal

#endif  // REMEX_SDK_SRC_FUTURE_STATE_H_
