// The Session method: a bidirectional stream that carries batches of
// submits, watches and cancels up and batches of answers and task ends down
// (see remex.v1.Executor.Session).
#ifndef REMEX_SERVER_RPC_SESSION_CALL_H_
#define REMEX_SERVER_RPC_SESSION_CALL_H_

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/executor/task.h"
#include "server/rpc/arena_message.h"
#include "server/rpc/call.h"
#include "server/rpc/session_registry.h"

namespace remex::rpc {

// One Session stream. Keeps one read and at most one write outstanding.
//
// Reads, and the finish, are handled on the poller of the call's queue. A
// write is started by whoever finds none in flight: the poller after a
// batch of requests, the pool thread that ends a task of the session, or
// the store thread that answers a submit, watch or cancel later, which so
// sends what it brought itself, without waking the poller. Answers and ends
// that come while a write is in flight wait in two vectors and go together
// in the next write (started by the poller when the write completes), so a
// lone task is answered at once and a busy stream sends few, large
// messages. The shared state is guarded by the link's mutex, which is never
// held across a batch, nor while calling gRPC (alarm cancellation aside) or
// the task service.
//
// Every submit, watch and cancel is answered through the task service's
// callback: inline, while the poller makes the call (then it joins the
// batch's answers, without a lock), or later, on any thread (then it goes
// through the link, under its mutex, as an end does). Each answer that has
// not come holds a reference to the link and counts in unanswered_: the
// stream does not end before it has come and been sent.
//
// A batch whose answers are all acceptances (submits and watches taken) is
// held back for up to kAnswerHoldMicros (1 ms), or until anything else is
// to be sent (an end, a late answer, a refusal, a cancel's answer, a
// close): a task that ends meanwhile is then answered and ended in one
// response, which saves a client a read (a message costs a Python client
// about 100 us). The hold keeps the write, so nothing overtakes it; a task
// that runs longer learns its id at most 1 ms later.
//
// The answer to an item is always sent with or before the item's end: the
// ends that come while a batch is handled are sorted when it ends, after
// its inline answers; an end whose answer has not come waits for it
// (parked_ends_); and a response too full for every answer defers all its
// ends.
//
// A submit or watch whose seq is still open (submitted or watched, end not
// yet reported, or answer not yet come) is refused with INVALID_ARGUMENT:
// the seqs of a batch are claimed together under one lock when the batch
// starts. A seq whose item failed is freed once the failure is answered.
//
// Ends the stream with OK once the client has half-closed, every item has
// been answered and every task of the session has been reported; with
// UNAVAILABLE after the server closed it (shutdown), and with
// INVALID_ARGUMENT after a request that did not parse (nothing after it is
// read), once every item has been answered and every task reported. A
// client that goes away drops its subscriptions: its tasks run on, and the
// answers that come later find no call.
//
// Its lifetime is a LongLivedCall's: pending operations (and a write being
// prepared) are counted, under the link's mutex since other threads may
// take the write; the last release unlinks the call in the same step, then
// deletes it. Answers that come later reach it through the link, so they
// need no hold of their own.
class SessionCall final : public LongLivedCall<SessionCall> {
 public:
  static constexpr auto kMethod = monitoring::RpcMethod::kSession;

 private:
  friend class LongLivedCall<SessionCall>;
  // Reports ends (AddEndLocked, Flush) and closes (CloseLocked).
  friend class SessionLink;

  struct Reply {
    uint64_t seq;
    std::string id;  // accepted if status is OK
    absl::Status status;
  };
  struct End {
    uint64_t seq;
    executor::TaskSnapshot task;
  };
  // The kinds of items of a SessionRequest.
  enum class Item : uint8_t { kSubmit, kWatch, kCancel };
  // Of a claimed seq (submits and watches): may its end be sent?
  enum class SeqState : uint8_t {
    // Yes: its answer was queued, or is among the answers of the batch
    // being handled (which are queued before the ends that came meanwhile).
    kAnswered,
    // Its answer came later, on another thread, before the batch that
    // claimed it ended (which then makes it kAnswered).
    kAnsweredEarly,
    // Not yet: its answer has not come.
    kAwaitingAnswer,
    // Not yet, and its end came: it waits in parked_ends_.
    kEndParked,
  };
  // The task call the poller is making, so that its answer, when it comes
  // inline, is told from one that comes later (see Deliver).
  struct InlineCall {
    SessionCall* call;
    Item item;
    uint64_t seq;
    bool answered = false;
  };
  // The call the poller on this thread is making, if any.
  static thread_local InlineCall* inline_call_;

  explicit SessionCall(const CallEnv& env) : LongLivedCall(env) {}
  ~SessionCall() { link_->Unref(); }

  // LongLivedCall's hooks.
  void RequestCall(Tag* tag);
  void Start();
  void OnCallDone();
  // The counted lifetime, under the link's mutex (hide LongLivedCall's).
  void Hold() ABSL_LOCKS_EXCLUDED(link_->mu);
  void Release() ABSL_LOCKS_EXCLUDED(link_->mu);
  void HoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) { CountHold(); }
  // Counts one operation as returned; after the last one, unlinks the call
  // and returns true: the caller then calls Retire, without the mutex.
  [[nodiscard]] bool ReleaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // Leaves the registry and deletes the call.
  void Retire() ABSL_LOCKS_EXCLUDED(link_->mu);
  // For SessionLink, which holds its own mutex: tells the analysis (and
  // checks) that it is this call's.
  void AssertLinkHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(link_->mu) {
    link_->mu.AssertHeld();
  }

  // Ends the stream once its tasks have been reported (server shutdown).
  void CloseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);

  void OnRead(bool ok);
  // Parses read_buffer_ into request_; false (and read_error_ set) if it is
  // no SessionRequest.
  bool ParseRequest();
  // Handles request_: answers its items, then sends what is ready.
  void HandleBatch() ABSL_LOCKS_EXCLUDED(link_->mu);
  void OnWrite(bool ok);
  void OnAlarm(bool ok);
  // The hold's alarm: sends what the hold kept, unless the write was taken
  // meanwhile.
  void OnHoldAlarm(bool ok);
  void OnFinished(bool ok);

  // Claims the seqs of the batch's submits and watches, noting those still
  // open in duplicates_, for RefuseDuplicate.
  void ClaimSeqsLocked(const v1::SessionRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // Whether item `index` of the batch (submits first, then watches) came
  // with a seq that was already open; then answers it.
  bool RefuseDuplicate(size_t index, uint64_t seq);
  void Submit(const v1::SessionSubmit& submit);
  void Watch(const v1::SessionWatch& watch);
  void Cancel(const v1::SessionCancel& cancel);
  void Answer(uint64_t seq, std::string id, absl::Status status);
  // Answers a submit or watch that failed: its claimed seq is freed with
  // the batch.
  void Fail(uint64_t seq, absl::Status status);
  // Makes a task call (`invoke`) for `item` under `seq`; notes a submit or
  // watch not answered inline in late_seqs_.
  template <typename Invoke>
  void MakeCall(Item item, uint64_t seq, Invoke invoke);
  // The callbacks of the task calls: the answer to item `item` under `seq`
  // of the session of `link`, which holds one reference for it (and one for
  // the task or watch, which a failure drops).
  static void Deliver(SessionLink* link, Item item, uint64_t seq,
                      std::string id, absl::Status status);
  // An answer that came while the poller made the call, on it.
  void AnswerInline(Item item, uint64_t seq, std::string id,
                    absl::Status status);
  // An answer that came later; returns whether the caller must Flush.
  bool AnswerLateLocked(Item item, uint64_t seq, std::string id,
                        absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // Queues an end whose seq's answer has been queued, or parks it until it
  // is.
  void SortEndLocked(End end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // RESOURCE_EXHAUSTED if the session's window is full.
  absl::Status ReserveSlot() const;
  // From SessionLink::OnTaskDone. Returns whether the caller must Flush (it
  // got the write).
  bool AddEndLocked(uint64_t seq, const executor::TaskSnapshot& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // Makes the caller the writer if no write is in flight and there is
  // something to send, or if a hold keeps the write (which it ends).
  bool TakeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // With the write just taken for a batch's answers: keeps it for up to
  // kAnswerHoldMicros instead, if they may wait. Returns whether it did.
  bool MaybeHoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  // Ends a hold early: its alarm comes back at once.
  void StopHoldAlarmLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);
  bool HasOutputLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu);

  // The writer: sends what waits, or gives the write back.
  void Flush() ABSL_LOCKS_EXCLUDED(link_->mu);
  // Sends `response` (the write Flush holds).
  void Write(const v1::SessionResponse& response)
      ABSL_LOCKS_EXCLUDED(link_->mu);
  // Converts the answers and ends taken by Flush into `response`; what goes
  // beyond about kMaxResponseBytes goes back to the front of the queues
  // (every end, if an answer did).
  void Fill(v1::SessionResponse* response) ABSL_LOCKS_EXCLUDED(link_->mu);

  // Starts what the poller can start now: a read, the finish.
  void Advance() ABSL_LOCKS_EXCLUDED(link_->mu);
  void MaybeRead() ABSL_LOCKS_EXCLUDED(link_->mu);
  void MaybeFinish() ABSL_LOCKS_EXCLUDED(link_->mu);

  // Raw, so that a request that does not parse is told from a half-close.
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> stream_{
      &context()};
  SessionLink* const link_ = new SessionLink;  // one reference, ours
  grpc::Alarm alarm_;       // cancelled to tell the poller that the call closed
  grpc::Alarm hold_alarm_;  // ends a hold (see MaybeHoldLocked)
  // Submitted or watched, end not yet reported.
  std::atomic<int64_t> open_tasks_{0};

  // The poller's.
  grpc::ByteBuffer read_buffer_;
  ArenaMessage<v1::SessionRequest> request_;
  // Why the reads ended early (a request that did not parse): the status the
  // stream ends with once its tasks are reported.
  absl::Status read_error_;
  // Set by Start, then only read on the poller.
  CallerIdentity identity_;
  // The batch being handled: its inline answers, its items, the task calls
  // it made, how many of those answered inline, and the seqs of its submits
  // and watches whose answer did not.
  std::vector<Reply> batch_answers_;
  int64_t batch_items_ = 0;
  int64_t batch_calls_ = 0;
  int64_t batch_inline_answers_ = 0;
  // Whether an answer of the batch must not wait: a refusal, or a cancel's.
  bool batch_urgent_ = false;
  std::vector<uint64_t> late_seqs_;
  // Indexes (as RefuseDuplicate's) of the batch's items whose seq was open,
  // ascending, and how many of them the batch has passed.
  std::vector<size_t> duplicates_;
  size_t duplicates_seen_ = 0;
  // Seqs the batch claimed for items that failed: freed when it ends.
  std::vector<uint64_t> failed_seqs_;
  bool reading_ = false;
  bool reads_done_ = false;  // the client half-closed, or the call broke
  bool call_done_ = false;   // the call ended (finished or cancelled)

  // The seqs of the submits and watches whose end is not yet reported.
  absl::flat_hash_map<uint64_t, SeqState> open_seqs_ ABSL_GUARDED_BY(link_->mu);
  // Ends whose seq's answer has not come (kEndParked).
  absl::flat_hash_map<uint64_t, executor::TaskSnapshot> parked_ends_
      ABSL_GUARDED_BY(link_->mu);
  // Task calls made (and, while a batch is handled, to be made) whose
  // answer has not been queued.
  int64_t unanswered_ ABSL_GUARDED_BY(link_->mu) = 0;
  std::vector<Reply> answers_ ABSL_GUARDED_BY(link_->mu);
  std::vector<End> ends_ ABSL_GUARDED_BY(link_->mu);
  // Ends that came while a batch was handled: sorted when it ends.
  std::vector<End> batch_ends_ ABSL_GUARDED_BY(link_->mu);
  bool handling_batch_ ABSL_GUARDED_BY(link_->mu) = false;
  bool writing_ ABSL_GUARDED_BY(link_->mu) = false;
  bool finishing_ ABSL_GUARDED_BY(link_->mu) = false;
  // Cancelled or a write failed: send no more.
  bool broken_ ABSL_GUARDED_BY(link_->mu) = false;
  // The server asked the session to end.
  bool closed_ ABSL_GUARDED_BY(link_->mu) = false;
  bool alarm_stopped_ ABSL_GUARDED_BY(link_->mu) = false;
  // A hold keeps the write (writing_ is set) until hold_alarm_ fires or
  // something else is to be sent.
  bool holding_ ABSL_GUARDED_BY(link_->mu) = false;
  // hold_alarm_ is set and its tag has not come back (it cannot be set
  // again before).
  bool hold_alarm_set_ ABSL_GUARDED_BY(link_->mu) = false;

  // The writer's (whoever holds the write).
  std::vector<Reply> flush_answers_;
  std::vector<End> flush_ends_;
  ArenaMessage<v1::SessionResponse> response_;
  grpc::ByteBuffer write_buffer_;

  MemberTag<SessionCall> read_tag_{this, &SessionCall::OnRead};
  MemberTag<SessionCall> write_tag_{this, &SessionCall::OnWrite};
  MemberTag<SessionCall> alarm_tag_{this, &SessionCall::OnAlarm};
  MemberTag<SessionCall> hold_tag_{this, &SessionCall::OnHoldAlarm};
  MemberTag<SessionCall> finish_tag_{this, &SessionCall::OnFinished};
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_SESSION_CALL_H_
