// The client end of remex.v1.Executor.Session: one bidirectional stream per
// client that carries the submits, watches and cancels of many threads in
// batches, and routes the answers and task ends to the callers that wait.
#ifndef REMEX_CLIENT_SESSION_H_
#define REMEX_CLIENT_SESSION_H_

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "remex/v1/executor.grpc.pb.h"

namespace remex::client {

class TaskSlot;

// One lazily opened Session stream at a time, reopened on the next call
// after it broke. A call made while no write is in flight is written at
// once; calls made meanwhile wait in a batch that is written as soon as the
// write in flight completes, so a lone call is not slowed and a busy client
// sends few, large messages. At most `window` submits and watches per
// stream are unanswered; more wait for answers.
//
// The stream's completion queue is run by the threads that wait (leader and
// followers): a waiting caller with nobody else polling polls it itself, so
// the answer it waits for wakes it straight from the socket, not through
// another thread. Other waiters sleep until their slot settles or the
// leader leaves. A background thread polls only when nobody waits and a
// batch is held back behind a write, so that calls are never left unsent,
// or a slot has a settle hook (NotifyWhenSettled), so that the hook fires
// as the task's end arrives although nobody waits for it.
//
// Thread-safe. Owns its thread; the destructor cancels the stream (tasks
// run on, on the server) and settles every open slot with CANCELLED.
class Session {
 public:
  // A non-empty `token` goes with every stream as `authorization: Bearer
  // TOKEN`.
  Session(std::shared_ptr<grpc::Channel> channel, int window,
          std::string token = "");
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sends a submit; the slot gets its answer and end.
  std::shared_ptr<TaskSlot> Submit(v1::SubmitRequest request);
  // Asks for the end of the task `id`.
  std::shared_ptr<TaskSlot> Watch(const std::string& id);
  // Cancels the task `id`; returns the answer (OK: cancelled, or already
  // ended), DEADLINE_EXCEEDED if none came by `deadline`.
  absl::Status Cancel(const std::string& id, absl::Time deadline);
  // Blocks until one of `slots` is settled or `deadline` passes; returns
  // whether one is. REQUIRES: every slot was made by this session.
  bool WaitAnySettled(absl::Span<TaskSlot* const> slots, absl::Time deadline);
  // Has `hook` called once `slot` settles, by the thread that settles it
  // (one polling the queue, or the destructor), after it released the
  // session's lock; until then the session's queue is polled even if
  // nobody waits. `hook` must be short and must not block: it runs on the
  // stream's critical path. Returns false, and drops `hook` uncalled, if
  // `slot` is settled already. A slot may have several hooks. REQUIRES:
  // `slot` was made by this session.
  bool NotifyWhenSettled(TaskSlot* slot, absl::AnyInvocable<void()> hook);

 private:
  friend class TaskSlot;
  class Stream;
  struct Op;

  // The tag of `wake_`.
  static Op* WakeOp();

  enum class Kind { kSubmit, kWatch, kCancel };
  // Queues an item on the current stream (opening one if needed) and
  // writes it unless a write is in flight.
  std::shared_ptr<TaskSlot> Send(Kind kind, v1::SubmitRequest* request,
                                 const std::string& id);
  // Waits until `reached` or `deadline`, polling the queue while no other
  // thread does. Returns `reached()`.
  bool AwaitLocked(absl::FunctionRef<bool()> reached, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Polls the queue (as the leader) until `reached` or `deadline`; with a
  // deadline in the past, takes in what is there and returns.
  void LeadLocked(absl::FunctionRef<bool()> reached, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The batch an item of `item_bytes` goes into (closing the open one if
  // the item would make it too large).
  v1::SessionRequest& BatchForLocked(Stream* stream, size_t item_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the oldest unwritten batch into stream->sending; false if there
  // is none.
  bool TakeBatchLocked(Stream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True while a batch waits behind a write that nobody would complete, or
  // a settle hook waits for its slot.
  bool NeedsBackgroundPollLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls the hooks of the slots settled since the last call; locks mu_.
  void RunSettleHooks();
  // The background thread.
  void PollInBackground();
  void OnOp(Op* op, bool ok);
  void OnRead(Stream* stream);
  void OnWritten(Stream* stream);
  // Settles every slot of `stream` with `status` and retires it.
  void Break(Stream* stream, const absl::Status& status);
  // Counts one operation of `stream` as returned; deletes it after the
  // last one once it is retired.
  void Release(Stream* stream);

  const int window_;
  const std::string token_;
  const std::unique_ptr<v1::Executor::Stub> stub_;
  grpc::CompletionQueue cq_;
  grpc::Alarm wake_;  // set by the destructor to free a polling thread
  std::thread background_;

  absl::Mutex mu_;
  Stream* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;  // not yet deleted
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool leader_ ABSL_GUARDED_BY(mu_) = false;  // a thread polls the queue
  // A stream whose next read is left for the next thread to poll.
  Stream* unread_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Settle hooks of slots not yet settled.
  int hooked_ ABSL_GUARDED_BY(mu_) = 0;
  // The hooks of slots settled, for the settling thread to call unlocked.
  std::vector<absl::AnyInvocable<void()>> fired_ ABSL_GUARDED_BY(mu_);
};

// What a session learns about one submit, watch or cancel: first its answer
// (accepted, with the task id, or failed), then, for a submit or watch, the
// task's end. If the stream breaks first, the slot settles with the
// stream's error: after acceptance the task goes on on the server, and the
// caller must follow it some other way (e.g. a unary Await).
//
// Thread-safe. Made and settled by a Session, which must outlive every call
// made on the slot (whoever holds a slot holds its session).
class TaskSlot {
 public:
  explicit TaskSlot(Session* session) : session_(session) {}

  // Blocks until answered or `deadline` passes (DEADLINE_EXCEEDED). OK:
  // accepted, and id() is set.
  absl::Status WaitAccepted(absl::Time deadline);
  // Empty until accepted; never changes after.
  const std::string& id() const { return id_; }
  // Blocks until settled (the task's end, or an error) or `deadline`
  // passes; returns whether settled. A deadline in the past still takes
  // in what has already arrived.
  bool WaitSettled(absl::Time deadline);
  // The terminal task, or the error. The task is moved out: take it once.
  // REQUIRES: settled.
  absl::StatusOr<v1::Task> Take();
  // True if accepted (even if the stream broke afterwards).
  bool accepted() const;
  // True once settled; never blocks.
  bool settled() const;

 private:
  friend class Session;

  // Tells the analysis that the caller's lock of `session` (which made this
  // slot) is this slot's guard, which it cannot see through session_.
  void HeldBy(const Session& session) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session.mu_)
          ABSL_ASSERT_EXCLUSIVE_LOCK(session_->mu_) {
    assert(&session == session_);
  }
  void SetAcceptedLocked(std::string id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_->mu_);
  void SetDoneLocked(v1::Task* task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_->mu_);
  void SetFailedLocked(absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_->mu_);
  // Hands the settle hooks, if any, to the session's fired_.
  void FireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_->mu_);

  Session* const session_;
  bool answered_ ABSL_GUARDED_BY(session_->mu_) = false;
  bool accepted_ ABSL_GUARDED_BY(session_->mu_) = false;
  bool settled_ ABSL_GUARDED_BY(session_->mu_) = false;
  // Written once, under the session's mutex, before answered_ is set; read
  // without it only after WaitAccepted saw answered_.
  std::string id_;
  absl::Status status_ ABSL_GUARDED_BY(session_->mu_);
  v1::Task task_ ABSL_GUARDED_BY(session_->mu_);
  std::vector<absl::AnyInvocable<void()>> on_settled_
      ABSL_GUARDED_BY(session_->mu_);
};

}  // namespace remex::client

#endif  // REMEX_CLIENT_SESSION_H_
