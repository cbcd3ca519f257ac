#include "server/rpc/session_call.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/rpc/proto_mapping.h"

namespace remex::rpc {
namespace {

// A response stops taking task ends at about this size (a single larger
// task still goes alone), well under the 64 MiB message limit.
constexpr size_t kMaxResponseBytes = 4 << 20;
// Answers waiting behind a write beyond which no more requests are read
// (HTTP/2 flow control then holds the client back).
constexpr int kMaxBufferedAnswers = 16384;
// Bytes a task adds to a response besides its result and output.
constexpr size_t kTaskOverheadBytes = 128;

}  // namespace

void SessionInbox::Push(uint64_t seq, const executor::TaskSnapshot& task) {
  absl::MutexLock lock(&mu_);
  if (alarm_ == nullptr) return;  // the call is gone: nobody to tell
  items_.push_back(Done{seq, task});
  if (!wake_pending_) WakeLocked();
}

void SessionInbox::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  if (!wake_pending_) WakeLocked();
}

void SessionInbox::WakeLocked() {
  wake_pending_ = true;
  if (alarm_ != nullptr) alarm_->Cancel();
}

void SessionInbox::Attach(grpc::Alarm* alarm) {
  absl::MutexLock lock(&mu_);
  alarm_ = alarm;
}

void SessionInbox::Detach() {
  absl::MutexLock lock(&mu_);
  alarm_ = nullptr;
}

bool SessionInbox::Take(std::vector<Done>* out) {
  absl::MutexLock lock(&mu_);
  if (out->empty()) {
    out->swap(items_);
  } else {
    std::move(items_.begin(), items_.end(), std::back_inserter(*out));
    items_.clear();
  }
  wake_pending_ = false;
  return closed_;
}

void SessionRegistry::Add(const std::shared_ptr<SessionInbox>& inbox) {
  absl::MutexLock lock(&mu_);
  if (closed_) inbox->Close();
  inboxes_.insert(inbox);
}

void SessionRegistry::Remove(const std::shared_ptr<SessionInbox>& inbox) {
  absl::MutexLock lock(&mu_);
  inboxes_.erase(inbox);
}

void SessionRegistry::CloseAll() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (const std::shared_ptr<SessionInbox>& inbox : inboxes_) inbox->Close();
}

int64_t SessionRegistry::open_sessions() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(inboxes_.size());
}

void SessionCall::Spawn(const CallEnv& env) {
  SessionCall* call = new SessionCall(env);
  // Must precede the request; its tag comes back only if a call is matched.
  call->context_.AsyncNotifyWhenDone(&call->done_tag_);
  call->pending_ = 1;
  env.service->RequestSession(&call->context_, &call->stream_, env.cq, env.cq,
                              &call->request_tag_);
}

SessionCall::~SessionCall() {
  if (inbox_ == nullptr) return;
  inbox_->Detach();
  env_.sessions->Remove(inbox_);
}

void SessionCall::OnRequest(bool ok) {
  if (!ok) return Release();  // shutting down; the done tag will not come
  ++pending_;                 // the done tag
  Spawn(env_);
  inbox_ = std::make_shared<SessionInbox>();
  inbox_->Attach(&alarm_);
  env_.sessions->Add(inbox_);
  TakeInbox();
  Advance();
  Release();  // the request tag
}

void SessionCall::OnRead(bool ok) {
  reading_ = false;
  if (ok) {
    for (const v1::SessionSubmit& submit : request_->submits()) {
      Submit(submit);
    }
    for (const v1::SessionWatch& watch : request_->watches()) Watch(watch);
    for (const v1::SessionCancel& cancel : request_->cancels()) {
      Cancel(cancel);
    }
    request_.Reset();
  } else {
    reads_done_ = true;  // half-closed by the client, or the call broke
  }
  Advance();
  Release();
}

void SessionCall::OnWrite(bool ok) {
  writing_ = false;
  responses_[1 - next_].Reset();
  if (!ok) broken_ = true;  // the call is gone; the done tag follows
  Advance();
  Release();
}

void SessionCall::OnAlarm(bool /*ok*/) {
  alarm_armed_ = false;
  if (!finishing_) {
    TakeInbox();
    Advance();
  }
  Release();
}

void SessionCall::OnDone(bool /*ok*/) {
  // Finished by us, or cancelled: the client went away, its deadline
  // passed, or the server cut the call.
  call_done_ = true;
  if (context_.IsCancelled()) broken_ = true;
  Advance();
  Release();
}

void SessionCall::OnFinished(bool /*ok*/) { Release(); }

void SessionCall::Submit(const v1::SessionSubmit& submit) {
  if (absl::Status status = ReserveSlot(); !status.ok()) {
    return Reject(submit.seq(), status);
  }
  absl::StatusOr<executor::TaskSpec> spec = TaskSpecFromProto(submit.request());
  if (!spec.ok()) return Reject(submit.seq(), spec.status());
  absl::StatusOr<executor::TaskSnapshot> task =
      env_.executor->Submit(*std::move(spec), ReportTo(submit.seq()));
  if (!task.ok()) return Reject(submit.seq(), task.status());
  ++open_tasks_;
  Accept(submit.seq(), task->id);
}

void SessionCall::Watch(const v1::SessionWatch& watch) {
  if (absl::Status status = ReserveSlot(); !status.ok()) {
    return Reject(watch.seq(), status);
  }
  // Counted first: the callback runs at once if the task has ended.
  ++open_tasks_;
  const absl::Status status =
      env_.executor->OnDone(watch.id(), ReportTo(watch.seq()));
  if (!status.ok()) {
    --open_tasks_;
    return Reject(watch.seq(), status);
  }
  Accept(watch.seq(), watch.id());
}

void SessionCall::Cancel(const v1::SessionCancel& cancel) {
  absl::StatusOr<executor::TaskSnapshot> task =
      env_.executor->Cancel(cancel.id());
  if (!task.ok()) return Reject(cancel.seq(), task.status());
  Accept(cancel.seq(), cancel.id());
}

void SessionCall::Accept(uint64_t seq, const std::string& id) {
  v1::SessionAccepted* accepted = next().add_accepted();
  accepted->set_seq(seq);
  accepted->set_id(id);
}

void SessionCall::Reject(uint64_t seq, const absl::Status& status) {
  v1::SessionFailed* failed = next().add_failed();
  failed->set_seq(seq);
  failed->mutable_error()->set_code(static_cast<int32_t>(status.code()));
  failed->mutable_error()->set_message(std::string(status.message()));
}

absl::Status SessionCall::ReserveSlot() const {
  if (open_tasks_ < env_.sessions->window()) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("the session already follows ", open_tasks_,
                   " unfinished tasks (its window); wait for some to end"));
}

executor::DoneCallback SessionCall::ReportTo(uint64_t seq) const {
  return [inbox = inbox_, seq](const executor::TaskSnapshot& task) {
    inbox->Push(seq, task);
  };
}

void SessionCall::TakeInbox() {
  // Armed before the take, so that a push after it wakes the new alarm.
  alarm_.Set(env_.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), &alarm_tag_);
  alarm_armed_ = true;
  ++pending_;
  const size_t before = ends_.size();
  if (inbox_->Take(&ends_)) closed_ = true;
  open_tasks_ -= static_cast<int64_t>(ends_.size() - before);
}

void SessionCall::StopAlarm() {
  inbox_->Detach();
  if (alarm_armed_) alarm_.Cancel();
}

void SessionCall::Advance() {
  MaybeWrite();
  MaybeRead();
  MaybeFinish();
}

void SessionCall::MaybeRead() {
  if (reading_ || reads_done_ || finishing_ || call_done_) return;
  const int buffered = next().accepted_size() + next().failed_size();
  if (writing_ && buffered >= kMaxBufferedAnswers) return;
  reading_ = true;
  ++pending_;
  stream_.Read(request_.get(), &read_tag_);
}

void SessionCall::FillEnds() {
  size_t bytes = 0;
  for (; next_end_ < ends_.size(); ++next_end_) {
    const SessionInbox::Done& end = ends_[next_end_];
    const executor::TaskOutcome* outcome = end.task.outcome.get();
    const size_t size = kTaskOverheadBytes +
                        (outcome == nullptr ? 0 : outcome->ApproximateBytes());
    if (bytes > 0 && bytes + size > kMaxResponseBytes) break;
    bytes += size;
    v1::SessionDone* done = next().add_done();
    done->set_seq(end.seq);
    TaskToProto(end.task, done->mutable_task());
  }
  if (next_end_ == ends_.size()) {
    ends_.clear();
    next_end_ = 0;
  }
}

void SessionCall::MaybeWrite() {
  if (writing_ || finishing_ || broken_) return;
  FillEnds();
  const v1::SessionResponse& response = next();
  if (response.accepted_size() == 0 && response.failed_size() == 0 &&
      response.done_size() == 0) {
    return;
  }
  next_ = 1 - next_;
  writing_ = true;
  ++pending_;
  stream_.Write(response, &write_tag_);
}

void SessionCall::MaybeFinish() {
  if (finishing_ || writing_) return;
  grpc::Status status;
  if (broken_) {
    status = grpc::Status::CANCELLED;
  } else if (open_tasks_ > 0 || !ends_.empty()) {
    return;  // ends still to report
  } else if (closed_) {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server is shutting down");
  } else if (!reads_done_) {
    return;
  }
  finishing_ = true;
  StopAlarm();
  ++pending_;
  stream_.Finish(status, &finish_tag_);
}

void SessionCall::Release() {
  if (--pending_ == 0) delete this;
}

}  // namespace remex::rpc
