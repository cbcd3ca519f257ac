#include "client/session.h"

#include <cassert>
#include <ctime>
#include <deque>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "common/grpc_status.h"
#include "common/task_error.h"

namespace remex::client {

absl::Status TaskSlot::WaitAccepted(absl::Time deadline) {
  absl::MutexLock lock(&session_->mu_);
  if (!session_->AwaitLocked([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                                 session_->mu_) { return answered_; },
                             deadline)) {
    return absl::DeadlineExceededError("no answer from the server in time");
  }
  return accepted_ ? absl::OkStatus() : status_;
}

bool TaskSlot::WaitSettled(absl::Time deadline) {
  absl::MutexLock lock(&session_->mu_);
  return session_->AwaitLocked([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                                   session_->mu_) { return settled_; },
                               deadline);
}

absl::StatusOr<v1::Task> TaskSlot::Take() {
  absl::MutexLock lock(&session_->mu_);
  if (!status_.ok()) return status_;
  return std::move(task_);
}

bool TaskSlot::accepted() const {
  absl::MutexLock lock(&session_->mu_);
  return accepted_;
}

bool TaskSlot::settled() const {
  absl::MutexLock lock(&session_->mu_);
  return settled_;
}

void TaskSlot::SetAcceptedLocked(std::string id) {
  if (answered_) return;
  id_ = std::move(id);
  answered_ = true;
  accepted_ = true;
}

void TaskSlot::SetDoneLocked(v1::Task* task) {
  if (settled_) return;
  task_.Swap(task);
  settled_ = true;
  FireLocked();
}

void TaskSlot::SetFailedLocked(absl::Status status) {
  if (settled_) return;
  status_ = std::move(status);
  answered_ = true;
  settled_ = true;
  FireLocked();
}

void TaskSlot::FireLocked() {
  if (on_settled_.empty()) return;
  session_->hooked_ -= static_cast<int>(on_settled_.size());
  for (absl::AnyInvocable<void()>& hook : on_settled_) {
    session_->fired_.push_back(std::move(hook));
  }
  on_settled_.clear();
  on_settled_.shrink_to_fit();
}

// One completion-queue operation of a stream, or the destructor's wake-up.
struct Session::Op {
  enum Type { kStart, kRead, kWrite, kFinish, kWake };
  Type type;
  Stream* stream;
};

Session::Op* Session::WakeOp() {
  static Op op{Op::kWake, nullptr};
  return &op;
}

namespace {

// A batch is closed once it holds about this much (an item larger than it
// goes alone), so that a burst of large submits never makes a message over
// the limit, and the server can start on the first ones sooner.
constexpr size_t kMaxBatchBytes = 4 << 20;
// Room left in a message for its framing besides the one item.
constexpr size_t kItemOverheadBytes = 64;

bool IsEmpty(const v1::SessionRequest& batch) {
  return batch.submits_size() == 0 && batch.watches_size() == 0 &&
         batch.cancels_size() == 0;
}

gpr_timespec ToGprTime(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    return gpr_inf_future(GPR_CLOCK_REALTIME);
  }
  if (deadline == absl::InfinitePast()) return gpr_inf_past(GPR_CLOCK_REALTIME);
  const timespec time = absl::ToTimespec(deadline);
  return gpr_timespec{time.tv_sec, static_cast<int32_t>(time.tv_nsec),
                      GPR_CLOCK_REALTIME};
}

}  // namespace

// One Session stream. Its bookkeeping is guarded by the session's mutex;
// the other fields belong to whoever holds the write (sending) or to the
// thread that polls the queue.
class Session::Stream {
 public:
  explicit Stream(Session* owner) : session(owner) {}

  // Tells the analysis that the caller's lock of `owner` (which made this
  // stream) is this stream's guard, which it cannot see through `session`.
  void HeldBy(const Session& owner) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(owner.mu_)
          ABSL_ASSERT_EXCLUSIVE_LOCK(session->mu_) {
    assert(&owner == session);
  }

  Session* const session;
  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<v1::SessionRequest, v1::SessionResponse>>
      rw;
  // Items not yet written, and the slots waiting on this stream. Items go
  // into `batch` until it holds about kMaxBatchBytes; it then waits, full,
  // in `full` (oldest first) and a new batch starts.
  v1::SessionRequest batch ABSL_GUARDED_BY(session->mu_);
  size_t batch_bytes ABSL_GUARDED_BY(session->mu_) = 0;
  std::deque<v1::SessionRequest> full ABSL_GUARDED_BY(session->mu_);
  absl::flat_hash_map<uint64_t, std::shared_ptr<TaskSlot>> slots
      ABSL_GUARDED_BY(session->mu_);
  absl::flat_hash_map<uint64_t, std::shared_ptr<TaskSlot>> cancels
      ABSL_GUARDED_BY(session->mu_);
  uint64_t next_seq ABSL_GUARDED_BY(session->mu_) = 0;
  // Submits and watches without accepted/failed.
  int unanswered ABSL_GUARDED_BY(session->mu_) = 0;
  bool writing ABSL_GUARDED_BY(session->mu_) = false;
  bool retired ABSL_GUARDED_BY(session->mu_) = false;
  // Operations not yet returned.
  int pending ABSL_GUARDED_BY(session->mu_) = 0;
  // The holder of the write.
  v1::SessionRequest sending;
  // The polling thread.
  v1::SessionResponse response;
  grpc::Status status;
  Op start{Op::kStart, this};
  Op read{Op::kRead, this};
  Op write{Op::kWrite, this};
  Op finish{Op::kFinish, this};
};

Session::Session(std::shared_ptr<grpc::Channel> channel, int window,
                 std::string token)
    : window_(window > 0 ? window : 1),
      token_(std::move(token)),
      stub_(v1::Executor::NewStub(channel)) {
  background_ = std::thread([this] { PollInBackground(); });
}

Session::~Session() {
  // No caller is left: each holds the session while it waits.
  Stream* stream = nullptr;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    stream = current_;
    if (stream != nullptr) {
      stream->HeldBy(*this);
      ++stream->pending;  // kept alive for TryCancel
    }
  }
  wake_.Set(&cq_, gpr_now(GPR_CLOCK_MONOTONIC), WakeOp());
  background_.join();
  if (stream != nullptr) {
    stream->context.TryCancel();
    Release(stream);
  }
  {
    absl::MutexLock lock(&mu_);
    leader_ = true;
    LeadLocked([this]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return streams_ == 0; },
               absl::InfiniteFuture());
  }
  cq_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
  }
}

std::shared_ptr<TaskSlot> Session::Submit(v1::SubmitRequest request) {
  return Send(Kind::kSubmit, &request, std::string());
}

std::shared_ptr<TaskSlot> Session::Watch(const std::string& id) {
  return Send(Kind::kWatch, nullptr, id);
}

absl::Status Session::Cancel(const std::string& id, absl::Time deadline) {
  return Send(Kind::kCancel, nullptr, id)->WaitAccepted(deadline);
}

bool Session::WaitAnySettled(absl::Span<TaskSlot* const> slots,
                             absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return AwaitLocked(
      [this, slots]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        for (const TaskSlot* slot : slots) {
          slot->HeldBy(*this);
          if (slot->settled_) return true;
        }
        return false;
      },
      deadline);
}

bool Session::NotifyWhenSettled(TaskSlot* slot,
                                absl::AnyInvocable<void()> hook) {
  absl::MutexLock lock(&mu_);
  slot->HeldBy(*this);
  if (slot->settled_) return false;
  slot->on_settled_.push_back(std::move(hook));
  ++hooked_;
  return true;
}

std::shared_ptr<TaskSlot> Session::Send(Kind kind, v1::SubmitRequest* request,
                                        const std::string& id) {
  auto slot = std::make_shared<TaskSlot>(this);
  Stream* stream = nullptr;
  bool open = false;
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    slot->HeldBy(*this);
    if (kind != Kind::kCancel) {
      // Flow control: wait for answers while the window is full.
      AwaitLocked(
          [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            if (closing_ || current_ == nullptr) return true;
            current_->HeldBy(*this);
            return current_->unanswered < window_;
          },
          absl::InfiniteFuture());
    }
    if (closing_) {
      slot->SetFailedLocked(absl::CancelledError("the client is closing"));
      return slot;
    }
    const size_t item_bytes =
        kItemOverheadBytes +
        (kind == Kind::kSubmit ? request->ByteSizeLong() : id.size());
    if (item_bytes > static_cast<size_t>(kMaxMessageBytes)) {
      slot->SetFailedLocked(absl::ResourceExhaustedError(
          absl::StrCat("the submit is ", item_bytes, " bytes, over the ",
                       kMaxMessageBytes, "-byte message limit")));
      return slot;
    }
    if (current_ == nullptr) {
      current_ = new Stream(this);
      ++streams_;
      open = true;
    }
    stream = current_;
    stream->HeldBy(*this);
    if (open) stream->pending = 2;  // the start and the first read
    v1::SessionRequest& batch = BatchForLocked(stream, item_bytes);
    const uint64_t seq = ++stream->next_seq;
    switch (kind) {
      case Kind::kSubmit: {
        v1::SessionSubmit* item = batch.add_submits();
        item->set_seq(seq);
        item->mutable_request()->Swap(request);
        break;
      }
      case Kind::kWatch: {
        v1::SessionWatch* item = batch.add_watches();
        item->set_seq(seq);
        item->set_id(id);
        break;
      }
      case Kind::kCancel: {
        v1::SessionCancel* item = batch.add_cancels();
        item->set_seq(seq);
        item->set_id(id);
        break;
      }
    }
    if (kind == Kind::kCancel) {
      stream->cancels.emplace(seq, slot);
    } else {
      stream->slots.emplace(seq, slot);
      ++stream->unanswered;
    }
    if (open) {
      // StartCall and Write share one operation slot: the start holds the
      // write, and its completion writes the batch.
      stream->writing = true;
    } else if (!stream->writing) {
      stream->writing = true;
      TakeBatchLocked(stream);
      ++stream->pending;
      write = true;
    }
  }
  if (open) {
    AddBearerToken(stream->context, token_);
    stream->rw = stub_->PrepareAsyncSession(&stream->context, &cq_);
    stream->rw->StartCall(&stream->start);
    stream->rw->Read(&stream->response, &stream->read);
  }
  if (write) stream->rw->Write(stream->sending, &stream->write);
  return slot;
}

bool Session::AwaitLocked(absl::FunctionRef<bool()> reached,
                          absl::Time deadline) {
  auto reached_or_no_leader = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return reached() || !leader_;
  };
  for (;;) {
    if (reached()) return true;
    if (!leader_) {
      leader_ = true;
      LeadLocked(reached, deadline);
      leader_ = false;  // a follower, if any, takes over
      return reached();
    }
    if (!mu_.AwaitWithDeadline(absl::Condition(&reached_or_no_leader),
                               deadline)) {
      return reached();
    }
  }
}

void Session::LeadLocked(absl::FunctionRef<bool()> reached,
                         absl::Time deadline) {
  const gpr_timespec until = ToGprTime(deadline);
  while (!reached()) {
    void* tag = nullptr;
    bool ok = false;
    Stream* unread = std::exchange(unread_, nullptr);
    mu_.Unlock();
    if (unread != nullptr) unread->rw->Read(&unread->response, &unread->read);
    const grpc::CompletionQueue::NextStatus status =
        cq_.AsyncNext(&tag, &ok, until);
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      OnOp(static_cast<Op*>(tag), ok);
    }
    mu_.Lock();
    if (status != grpc::CompletionQueue::GOT_EVENT) return;
  }
}

v1::SessionRequest& Session::BatchForLocked(Stream* stream, size_t item_bytes) {
  stream->HeldBy(*this);
  if (stream->batch_bytes > 0 &&
      stream->batch_bytes + item_bytes > kMaxBatchBytes) {
    stream->full.emplace_back().Swap(&stream->batch);
    stream->batch_bytes = 0;
  }
  stream->batch_bytes += item_bytes;
  return stream->batch;
}

bool Session::TakeBatchLocked(Stream* stream) {
  stream->HeldBy(*this);
  if (!stream->full.empty()) {
    stream->sending.Swap(&stream->full.front());
    stream->full.pop_front();
    return true;
  }
  if (IsEmpty(stream->batch)) return false;
  stream->sending.Swap(&stream->batch);
  stream->batch_bytes = 0;
  return true;
}

bool Session::NeedsBackgroundPollLocked() const {
  // A hooked slot is open on some stream: its end (or the stream's) comes
  // in through the queue.
  if (hooked_ > 0) return true;
  if (current_ == nullptr) return false;
  current_->HeldBy(*this);
  return current_->writing &&
         (!current_->full.empty() || !IsEmpty(current_->batch));
}

void Session::PollInBackground() {
  absl::MutexLock lock(&mu_);
  auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closing_ || (!leader_ && NeedsBackgroundPollLocked());
  };
  for (;;) {
    mu_.Await(absl::Condition(&has_work));
    if (closing_) return;
    leader_ = true;
    LeadLocked([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                   mu_) { return closing_ || !NeedsBackgroundPollLocked(); },
               absl::InfiniteFuture());
    leader_ = false;
  }
}

void Session::OnOp(Op* op, bool ok) {
  Stream* stream = op->stream;
  switch (op->type) {
    case Op::kWake:
      return;
    case Op::kStart:
      if (ok) OnWritten(stream);  // else the read fails and breaks it
      break;
    case Op::kRead:
      if (ok) {
        OnRead(stream);  // the next read is started later (see unread_)
        RunSettleHooks();
      } else {
        stream->rw->Finish(&stream->status, &stream->finish);
      }
      return;  // the next read or the finish takes its place
    case Op::kWrite:
      if (ok) OnWritten(stream);  // else the read fails and breaks it
      break;
    case Op::kFinish:
      Break(stream, stream->status.ok()
                        ? absl::UnavailableError("the server ended the session")
                        : common::FromGrpcStatus(stream->status));
      RunSettleHooks();
      break;
  }
  Release(stream);
}

void Session::RunSettleHooks() {
  std::vector<absl::AnyInvocable<void()>> fired;
  {
    absl::MutexLock lock(&mu_);
    if (fired_.empty()) return;
    fired.swap(fired_);
  }
  for (absl::AnyInvocable<void()>& hook : fired) hook();
}

void Session::OnRead(Stream* stream) {
  v1::SessionResponse& response = stream->response;
  absl::MutexLock lock(&mu_);
  stream->HeldBy(*this);
  // Starting a read can cost a write to the socket (flow control): the
  // next thread to poll starts it, after the waiters this read settles
  // have gone.
  unread_ = stream;
  // Submits and watches are answered in `slots`, cancels in `cancels`;
  // answers come with or before ends.
  for (v1::SessionAccepted& item : *response.mutable_accepted()) {
    auto it = stream->slots.find(item.seq());
    if (it != stream->slots.end()) {
      --stream->unanswered;
      it->second->HeldBy(*this);
      it->second->SetAcceptedLocked(std::move(*item.mutable_id()));
      continue;
    }
    auto cancel = stream->cancels.find(item.seq());
    if (cancel == stream->cancels.end()) continue;
    cancel->second->HeldBy(*this);
    cancel->second->SetAcceptedLocked(std::move(*item.mutable_id()));
    stream->cancels.erase(cancel);
  }
  for (const v1::SessionFailed& item : response.failed()) {
    const absl::Status status = common::FromTaskError(item.error());
    auto it = stream->slots.find(item.seq());
    if (it != stream->slots.end()) {
      --stream->unanswered;
      it->second->HeldBy(*this);
      it->second->SetFailedLocked(status);
      stream->slots.erase(it);
      continue;
    }
    auto cancel = stream->cancels.find(item.seq());
    if (cancel == stream->cancels.end()) continue;
    cancel->second->HeldBy(*this);
    cancel->second->SetFailedLocked(status);
    stream->cancels.erase(cancel);
  }
  for (v1::SessionDone& item : *response.mutable_done()) {
    auto it = stream->slots.find(item.seq());
    if (it == stream->slots.end()) continue;
    it->second->HeldBy(*this);
    it->second->SetDoneLocked(item.mutable_task());
    stream->slots.erase(it);
  }
}

void Session::OnWritten(Stream* stream) {
  stream->sending.Clear();
  bool write = false;
  {
    absl::MutexLock lock(&mu_);
    stream->HeldBy(*this);
    if (!stream->retired && TakeBatchLocked(stream)) {
      ++stream->pending;
      write = true;
    } else {
      stream->writing = false;
    }
  }
  if (write) stream->rw->Write(stream->sending, &stream->write);
}

void Session::Break(Stream* stream, const absl::Status& status) {
  const absl::Status broken(
      status.code(), absl::StrCat("the session stream to the server broke: ",
                                  status.message()));
  absl::MutexLock lock(&mu_);
  stream->HeldBy(*this);
  if (current_ == stream) current_ = nullptr;
  stream->retired = true;
  stream->writing = true;  // nothing more is written
  for (auto& [seq, slot] : stream->slots) {
    slot->HeldBy(*this);
    slot->SetFailedLocked(broken);
  }
  for (auto& [seq, slot] : stream->cancels) {
    slot->HeldBy(*this);
    slot->SetFailedLocked(broken);
  }
  stream->slots.clear();
  stream->cancels.clear();
  stream->unanswered = 0;
}

void Session::Release(Stream* stream) {
  {
    absl::MutexLock lock(&mu_);
    stream->HeldBy(*this);
    if (--stream->pending > 0 || !stream->retired) return;
    --streams_;
  }
  delete stream;
}

}  // namespace remex::client
