#include "server/rpc/session_registry.h"

#include "server/rpc/session_call.h"

namespace remex::rpc {

void SessionLink::OnTaskDone(uint64_t seq, const executor::TaskSnapshot& task) {
  SessionCall* writer = nullptr;
  {
    absl::MutexLock lock(&mu);
    if (call != nullptr) {
      call->AssertLinkHeld();
      if (call->AddEndLocked(seq, task)) writer = call;
    }
  }
  // This thread sends the end itself: no wake-up of the poller. The call
  // cannot go while it holds the write.
  if (writer != nullptr) writer->Flush();
  Unref();
}

executor::DoneCallback SessionLink::ReportTo(uint64_t seq) {
  return [this, seq](const executor::TaskSnapshot& task) {
    OnTaskDone(seq, task);
  };
}

void SessionLink::CloseLocked() {
  if (call == nullptr) return;
  call->AssertLinkHeld();
  call->CloseLocked();
}

void SessionRegistry::Add(SessionLink* link) {
  link->Ref();
  absl::MutexLock lock(&mu_);
  if (closed_) {
    absl::MutexLock link_lock(&link->mu);
    link->CloseLocked();
  }
  links_.insert(link);
}

void SessionRegistry::Remove(SessionLink* link) {
  bool listed = false;
  {
    absl::MutexLock lock(&mu_);
    listed = links_.erase(link) > 0;
  }
  if (listed) link->Unref();
}

void SessionRegistry::CloseAll() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (SessionLink* link : links_) {
    absl::MutexLock link_lock(&link->mu);
    link->CloseLocked();
  }
}

int64_t SessionRegistry::open_sessions() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(links_.size());
}

}  // namespace remex::rpc
