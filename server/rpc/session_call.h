// The Session method: a bidirectional stream that carries batches of
// submits, watches and cancels up and batches of answers and task ends down
// (see remex.v1.Executor.Session).
#ifndef REMEX_SERVER_RPC_SESSION_CALL_H_
#define REMEX_SERVER_RPC_SESSION_CALL_H_

#include <google/protobuf/arena.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/rpc/call.h"

namespace remex::rpc {

// Hands the ends of a session's tasks from the threads that end them to the
// session's poller. A push wakes the poller (cancels the call's alarm) only
// if no wake is pending yet, so a burst of ends costs one wake, and the
// poller takes them all with one swap: no lock is held across a batch.
//
// Thread-safe. Shared by the call and the done callbacks of its tasks; once
// the call detaches it (or before it attaches), pushes are dropped.
class SessionInbox {
 public:
  struct Done {
    uint64_t seq;
    executor::TaskSnapshot task;
  };

  // From any thread.
  void Push(uint64_t seq, const executor::TaskSnapshot& task);
  // Asks the call to end its stream once its tasks have ended (shutdown).
  void Close();

  // Poller only. `alarm` is armed; a push cancels it.
  void Attach(grpc::Alarm* alarm);
  // Poller only. After Detach returns, nothing touches the alarm.
  void Detach();
  // Poller only, with the alarm (re)armed: swaps what was pushed into
  // `*out` (which must be empty) and re-enables wakes. Returns whether
  // Close was called.
  bool Take(std::vector<Done>* out);

 private:
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  grpc::Alarm* alarm_ ABSL_GUARDED_BY(mu_) = nullptr;
  // True from a wake until the poller takes: further pushes need no wake.
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = true;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Done> items_ ABSL_GUARDED_BY(mu_);
};

// The open sessions of one server, so that shutdown can end them.
//
// Thread-safe. Owned by the RpcServer; shares the inboxes.
class SessionRegistry {
 public:
  // Most tasks a session may have submitted or watched and not yet seen end.
  explicit SessionRegistry(int64_t window) : window_(window) {}

  int64_t window() const { return window_; }
  // Registers a session; after CloseAll its inbox is closed at once.
  void Add(const std::shared_ptr<SessionInbox>& inbox);
  void Remove(const std::shared_ptr<SessionInbox>& inbox);
  // Closes every open and every later session.
  void CloseAll();
  int64_t open_sessions() const;

 private:
  const int64_t window_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::shared_ptr<SessionInbox>> inboxes_
      ABSL_GUARDED_BY(mu_);
};

// A message on an arena of its own that is reset after each use, so that a
// batch of a thousand tasks costs a few block allocations rather than
// several per task. Not thread-safe.
template <class Message>
class ArenaMessage {
 public:
  ArenaMessage() : arena_(Options()) { Reset(); }
  Message& operator*() { return *message_; }
  Message* operator->() { return message_; }
  Message* get() { return message_; }
  // Frees the message and everything it held; makes a new, empty one.
  void Reset() {
    arena_.Reset();
    message_ = google::protobuf::Arena::CreateMessage<Message>(&arena_);
  }

 private:
  static google::protobuf::ArenaOptions Options() {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 4 << 10;
    options.max_block_size = 256 << 10;
    return options;
  }

  google::protobuf::Arena arena_;
  Message* message_ = nullptr;
};

// One Session stream. Keeps one read and at most one write outstanding;
// answers and task ends that come while a write is in flight are batched
// into the next one, so a lone task is answered at once and a busy stream
// sends few, large messages. A submit is handled on the poller (the
// executor's Submit never blocks); task ends arrive through the inbox.
//
// Ends the stream with OK once the client has half-closed and every task
// of the session has been reported; with UNAVAILABLE after the server
// closed it (shutdown) and every task has been reported. A client that goes
// away drops its subscriptions: its tasks run on.
//
// Pending operations are counted; the object deletes itself when the count
// drops to zero. Only the poller of its queue touches it.
class SessionCall final {
 public:
  static void Spawn(const CallEnv& env);

 private:
  explicit SessionCall(const CallEnv& env) : env_(env) {}
  ~SessionCall();

  void OnRequest(bool ok);
  void OnRead(bool ok);
  void OnWrite(bool ok);
  void OnAlarm(bool ok);
  void OnDone(bool ok);
  void OnFinished(bool ok);

  void Submit(const v1::SessionSubmit& submit);
  void Watch(const v1::SessionWatch& watch);
  void Cancel(const v1::SessionCancel& cancel);
  void Accept(uint64_t seq, const std::string& id);
  void Reject(uint64_t seq, const absl::Status& status);
  // RESOURCE_EXHAUSTED if the session's window is full.
  absl::Status ReserveSlot() const;
  // A done callback that reports the task under `seq`.
  executor::DoneCallback ReportTo(uint64_t seq) const;

  // Re-arms the alarm, then takes the ends from the inbox.
  void TakeInbox();
  // Moves ends taken from the inbox into the next response, up to about
  // kMaxResponseBytes.
  void FillEnds();
  v1::SessionResponse& next() { return *responses_[next_]; }
  void StopAlarm();
  // Starts what can start now: a read, a write, the finish.
  void Advance();
  void MaybeRead();
  void MaybeWrite();
  void MaybeFinish();
  // Counts one operation as returned; deletes the call after the last one.
  void Release();

  const CallEnv env_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::SessionResponse, v1::SessionRequest>
      stream_{&context_};
  ArenaMessage<v1::SessionRequest> request_;
  // The next response is filled while the other one is in flight; they
  // swap at each write.
  ArenaMessage<v1::SessionResponse> responses_[2];
  int next_ = 0;
  std::shared_ptr<SessionInbox> inbox_;
  // Ends taken from the inbox; those before next_end_ are in next().
  std::vector<SessionInbox::Done> ends_;
  size_t next_end_ = 0;
  grpc::Alarm alarm_;
  // Submitted or watched, end not yet taken from the inbox.
  int64_t open_tasks_ = 0;
  int pending_ = 0;
  bool alarm_armed_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool reads_done_ = false;  // the client half-closed, or the call broke
  bool closed_ = false;      // the server asked the session to end
  bool call_done_ = false;   // the call ended (finished or cancelled)
  bool broken_ = false;      // cancelled or a write failed: send no more
  bool finishing_ = false;
  MemberTag<SessionCall> request_tag_{this, &SessionCall::OnRequest};
  MemberTag<SessionCall> read_tag_{this, &SessionCall::OnRead};
  MemberTag<SessionCall> write_tag_{this, &SessionCall::OnWrite};
  MemberTag<SessionCall> alarm_tag_{this, &SessionCall::OnAlarm};
  MemberTag<SessionCall> done_tag_{this, &SessionCall::OnDone};
  MemberTag<SessionCall> finish_tag_{this, &SessionCall::OnFinished};
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_SESSION_CALL_H_
