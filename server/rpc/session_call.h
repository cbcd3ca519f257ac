// The Session method: a bidirectional stream that carries batches of
// submits, watches and cancels up and batches of answers and task ends down
// (see remex.v1.Executor.Session).
#ifndef REMEX_SERVER_RPC_SESSION_CALL_H_
#define REMEX_SERVER_RPC_SESSION_CALL_H_

#include <google/protobuf/arena.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/executor/task.h"
#include "server/rpc/call.h"

namespace remex::rpc {

class SessionCall;

// Links a session call to what may outlive it: its tasks, which report
// their ends to it, and the registry. Its mutex guards the call's shared
// state (see SessionCall); `call` is cleared, under it, before the call is
// deleted.
//
// Thread-safe. Reference-counted, because a task holds its listener by a
// plain pointer (a shared_ptr per task would cost an allocation per task):
// one reference is the call's, one the registry's while it lists the link,
// one per task or watch whose end is awaited. The last Unref deletes it.
class SessionLink final : public executor::DoneListener {
 public:
  SessionLink() = default;  // one reference, the creator's
  SessionLink(const SessionLink&) = delete;
  SessionLink& operator=(const SessionLink&) = delete;

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Reports the end of the task under `seq` to the call, if it is still
  // there, then drops the task's reference.
  void OnTaskDone(uint64_t seq, const executor::TaskSnapshot& task) override;
  // A done callback that does the same, for Executor::OnDone; the caller
  // gives it a reference. Stored without an allocation (two plain words).
  executor::DoneCallback ReportTo(uint64_t seq);

  absl::Mutex mu;
  SessionCall* call ABSL_GUARDED_BY(mu) = nullptr;

 private:
  ~SessionLink() = default;

  std::atomic<int32_t> refs_{1};
};

// The open sessions of one server, so that shutdown can end them.
//
// Thread-safe. Owned by the RpcServer; shares the links.
class SessionRegistry {
 public:
  // Most tasks a session may have submitted or watched and not yet seen end.
  explicit SessionRegistry(int64_t window) : window_(window) {}

  int64_t window() const { return window_; }
  // Registers a session; after CloseAll it is closed at once.
  // The registry holds a reference while it lists the link. Removing a
  // link that was never added (a call that was never matched) does nothing.
  void Add(SessionLink* link);
  void Remove(SessionLink* link);
  // Closes every open and every later session: each ends its stream once
  // its tasks have been reported.
  void CloseAll();
  int64_t open_sessions() const;

 private:
  const int64_t window_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<SessionLink*> links_ ABSL_GUARDED_BY(mu_);
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

// One Session stream. Keeps one read and at most one write outstanding.
//
// Reads, and the finish, are handled on the poller of the call's queue. A
// write is started by whoever finds none in flight: the poller after a
// batch of requests, or the pool thread that ends a task of the session,
// which so sends the end itself, without waking the poller. Answers and
// ends that come while a write is in flight wait in two vectors and go
// together in the next write (started by the poller when the write
// completes), so a lone task is answered at once and a busy stream sends
// few, large messages. The shared state is guarded by the link's mutex,
// which is never held across a batch, nor while calling gRPC (alarm
// cancellation aside) or the executor.
//
// The answer to an item is always sent with or before the item's end: ends
// are not taken for writing while a batch of requests is being handled.
//
// Ends the stream with OK once the client has half-closed and every task of
// the session has been reported; with UNAVAILABLE after the server closed
// it (shutdown) and every task has been reported. A client that goes away
// drops its subscriptions: its tasks run on.
//
// Pending operations (and a write being prepared) are counted; the object
// deletes itself when the count drops to zero.
class SessionCall final {
 public:
  static void Spawn(const CallEnv& env);

  // Called with the link's mutex held.
  void CloseLocked();

 private:
  friend class SessionLink;  // reports ends: AddEndLocked, Flush

  struct Reply {
    uint64_t seq;
    std::string id;  // accepted if status is OK
    absl::Status status;
  };
  struct End {
    uint64_t seq;
    executor::TaskSnapshot task;
  };

  explicit SessionCall(const CallEnv& env) : env_(env) {}
  ~SessionCall() { link_->Unref(); }

  void OnRequest(bool ok);
  void OnRead(bool ok);
  void OnWrite(bool ok);
  void OnAlarm(bool ok);
  void OnDone(bool ok);
  void OnFinished(bool ok);

  void Submit(const v1::SessionSubmit& submit);
  void Watch(const v1::SessionWatch& watch);
  void Cancel(const v1::SessionCancel& cancel);
  void Answer(uint64_t seq, std::string id, absl::Status status);
  // RESOURCE_EXHAUSTED if the session's window is full.
  absl::Status ReserveSlot() const;
  // From SessionLink::OnTaskDone, with the link's mutex held. Returns
  // whether the caller must Flush (it got the write).
  bool AddEndLocked(uint64_t seq, const executor::TaskSnapshot& task);
  // Makes the caller the writer if no write is in flight and there is
  // something to send. Link mutex held.
  bool TakeWriteLocked();
  bool HasOutputLocked() const;

  // The writer: sends what waits, or gives the write back.
  void Flush();
  // Converts the answers and ends taken by Flush into `response`; ends
  // beyond about kMaxResponseBytes go back to the front of the queue.
  void Fill(v1::SessionResponse* response);

  // Starts what the poller can start now: a read, the finish.
  void Advance();
  void MaybeRead();
  void MaybeFinish();
  // Counts one operation as returned; deletes the call after the last one.
  void Release();

  const CallEnv env_;
  absl::Time started_;  // when the stream was matched, for the metrics
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::SessionResponse, v1::SessionRequest>
      stream_{&context_};
  SessionLink* const link_ = new SessionLink;  // one reference, ours
  grpc::Alarm alarm_;  // cancelled to tell the poller that the call closed
  // Submitted or watched, end not yet reported.
  std::atomic<int64_t> open_tasks_{0};

  // The poller's.
  ArenaMessage<v1::SessionRequest> request_;
  std::vector<Reply> batch_answers_;
  bool reading_ = false;
  bool reads_done_ = false;  // the client half-closed, or the call broke
  bool call_done_ = false;   // the call ended (finished or cancelled)

  // Guarded by link_->mu.
  std::vector<Reply> answers_;
  std::vector<End> ends_;
  bool handling_batch_ = false;
  bool writing_ = false;
  bool finishing_ = false;
  bool broken_ = false;  // cancelled or a write failed: send no more
  bool closed_ = false;  // the server asked the session to end
  bool alarm_stopped_ = false;
  int pending_ = 0;

  // The writer's (whoever holds the write).
  std::vector<Reply> flush_answers_;
  std::vector<End> flush_ends_;
  ArenaMessage<v1::SessionResponse> response_;

  MemberTag<SessionCall> request_tag_{this, &SessionCall::OnRequest};
  MemberTag<SessionCall> read_tag_{this, &SessionCall::OnRead};
  MemberTag<SessionCall> write_tag_{this, &SessionCall::OnWrite};
  MemberTag<SessionCall> alarm_tag_{this, &SessionCall::OnAlarm};
  MemberTag<SessionCall> done_tag_{this, &SessionCall::OnDone};
  MemberTag<SessionCall> finish_tag_{this, &SessionCall::OnFinished};
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_SESSION_CALL_H_
