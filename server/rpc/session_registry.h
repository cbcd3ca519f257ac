// What a Session call shares with the threads that outlive it: SessionLink
// (its tasks report their ends through it) and SessionRegistry (the open
// sessions, so that shutdown can end them).
#ifndef REMEX_SERVER_RPC_SESSION_REGISTRY_H_
#define REMEX_SERVER_RPC_SESSION_REGISTRY_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/executor/task.h"

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
// one per task or watch whose end is awaited, one per task call of the
// session (submit, watch, cancel) whose answer has not come. The last Unref
// deletes it.
class SessionLink final : public executor::DoneListener {
 public:
  SessionLink() = default;  // one reference, the creator's
  SessionLink(const SessionLink&) = delete;
  SessionLink& operator=(const SessionLink&) = delete;

  void Ref(int64_t n = 1) { refs_.fetch_add(n, std::memory_order_relaxed); }
  void Unref(int64_t n = 1) {
    if (n > 0 && refs_.fetch_sub(n, std::memory_order_acq_rel) == n) {
      delete this;
    }
  }

  // Reports the end of the task under `seq` to the call, if it is still
  // there, then drops the task's reference.
  void OnTaskDone(uint64_t seq, const executor::TaskSnapshot& task) override
      ABSL_LOCKS_EXCLUDED(mu);
  // A done callback that does the same, for Executor::OnDone; the caller
  // gives it a reference. Stored without an allocation (two plain words).
  executor::DoneCallback ReportTo(uint64_t seq);
  // Closes the call, if it is still there (see SessionCall::CloseLocked).
  void CloseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  absl::Mutex mu;
  SessionCall* call ABSL_GUARDED_BY(mu) = nullptr;

 private:
  ~SessionLink() = default;

  std::atomic<int64_t> refs_{1};
};

// The open sessions of one server, so that shutdown can end them.
//
// Thread-safe. Owned by the RpcServer; shares the links. Its mutex is taken
// before a link's.
class SessionRegistry {
 public:
  // Most tasks a session may have submitted or watched and not yet seen end.
  explicit SessionRegistry(int64_t window) : window_(window) {}

  int64_t window() const { return window_; }
  // Registers a session; after CloseAll it is closed at once.
  // The registry holds a reference while it lists the link. Removing a
  // link that was never added (a call that was never matched) does nothing.
  void Add(SessionLink* link) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(SessionLink* link) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every open and every later session: each ends its stream once
  // its tasks have been reported.
  void CloseAll() ABSL_LOCKS_EXCLUDED(mu_);
  int64_t open_sessions() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const int64_t window_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<SessionLink*> links_ ABSL_GUARDED_BY(mu_);
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_SESSION_REGISTRY_H_
