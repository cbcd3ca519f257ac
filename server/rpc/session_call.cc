#include "server/rpc/session_call.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/task_error.h"
#include "server/rpc/proto_mapping.h"

namespace remex::rpc {

thread_local SessionCall::InlineCall* SessionCall::inline_call_ = nullptr;

namespace {

// A response stops taking answers and task ends at about this size (a
// single larger task still goes alone): under the 4 MiB a client takes by
// default, with room for the error of the estimates below.
constexpr size_t kMaxResponseBytes = (4 << 20) - (256 << 10);
// Answers waiting behind a write beyond which no more requests are read
// (HTTP/2 flow control then holds the client back).
constexpr size_t kMaxBufferedAnswers = 16384;
// Bytes a task adds to a response besides its strings, result and output.
constexpr size_t kTaskOverheadBytes = 128;
// Bytes an answer adds to a response besides its id and message.
constexpr size_t kAnswerOverheadBytes = 32;
// Bytes a label adds to a task besides its key and value.
constexpr size_t kLabelOverheadBytes = 8;
// How long acceptances may wait for their tasks' ends, to go with them: well
// above the 20-200 us a no-op task takes from submit to end here, and short
// against what a longer task makes its caller wait anyway.
constexpr int64_t kAnswerHoldMicros = 1000;

size_t ApproximateBytes(const executor::TaskSnapshot& task) {
  const executor::TaskSpec& spec = *task.spec;
  size_t bytes = kTaskOverheadBytes + task.id.size() + spec.function.size() +
                 spec.pool.size();
  for (const auto& [key, value] : spec.labels) {
    bytes += kLabelOverheadBytes + key.size() + value.size();
  }
  if (task.outcome != nullptr) bytes += task.outcome->ApproximateBytes();
  return bytes;
}

}  // namespace

void SessionCall::RequestCall(Tag* tag) {
  env().service->RequestSession(&context(), &stream_, env().cq, env().cq, tag);
}

void SessionCall::CloseLocked() {
  closed_ = true;
  StopHoldAlarmLocked();
  if (!alarm_stopped_) {
    alarm_stopped_ = true;
    alarm_.Cancel();
  }
}

void SessionCall::Start() {
  // Set before the call is linked: closing it cancels the alarm.
  alarm_.Set(env().cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), &alarm_tag_);
  {
    absl::MutexLock lock(&link_->mu);
    HoldLocked();  // the alarm
    link_->call = this;
  }
  env().sessions->Add(link_);
  // A session that cannot authenticate reads nothing and ends with why.
  absl::StatusOr<CallerIdentity> identity =
      Authorize(env().auth, context(), auth::kRead | auth::kSubmit);
  if (identity.ok()) {
    identity_ = *std::move(identity);
  } else {
    read_error_ = identity.status();
    reads_done_ = true;
  }
  Advance();
}

void SessionCall::Hold() {
  absl::MutexLock lock(&link_->mu);
  HoldLocked();
}

void SessionCall::Release() {
  bool last = false;
  {
    absl::MutexLock lock(&link_->mu);
    last = ReleaseLocked();
  }
  if (last) Retire();
}

bool SessionCall::ReleaseLocked() {
  if (!CountRelease()) return false;
  link_->call = nullptr;
  return true;
}

void SessionCall::Retire() {
  env().sessions->Remove(link_);
  delete this;
}

void SessionCall::OnRead(bool ok) {
  reading_ = false;
  if (ok && ParseRequest()) {
    HandleBatch();
  } else {
    // Half-closed by the client, the call broke, or a bad request.
    reads_done_ = true;
  }
  Advance();
  Release();
}

bool SessionCall::ParseRequest() {
  if (grpc::SerializationTraits<v1::SessionRequest>::Deserialize(&read_buffer_,
                                                                 request_.get())
          .ok()) {
    return true;
  }
  request_.Reset();
  read_error_ = absl::InvalidArgumentError(
      "a SessionRequest did not parse (not protobuf, or a string field that "
      "is not valid UTF-8); nothing after it was read");
  return false;
}

void SessionCall::HandleBatch() {
  batch_items_ = request_->submits_size() + request_->watches_size() +
                 request_->cancels_size();
  batch_calls_ = 0;
  batch_inline_answers_ = 0;
  batch_urgent_ = false;
  {
    absl::MutexLock lock(&link_->mu);
    handling_batch_ = true;
    ClaimSeqsLocked(*request_);
    // Every item may make a task call whose answer comes later: counted
    // before the calls start; given back below for those that did not.
    unanswered_ += batch_items_;
  }
  link_->Ref(batch_items_);  // the answers'
  size_t index = 0;
  for (const v1::SessionSubmit& submit : request_->submits()) {
    if (!RefuseDuplicate(index++, submit.seq())) Submit(submit);
  }
  for (const v1::SessionWatch& watch : request_->watches()) {
    if (!RefuseDuplicate(index++, watch.seq())) Watch(watch);
  }
  for (const v1::SessionCancel& cancel : request_->cancels()) {
    Cancel(cancel);
  }
  request_.Reset();
  // Answered inline, or no call made.
  const int64_t settled = batch_items_ - batch_calls_ + batch_inline_answers_;
  bool write = false;
  {
    absl::MutexLock lock(&link_->mu);
    handling_batch_ = false;
    unanswered_ -= settled;
    for (uint64_t seq : failed_seqs_) open_seqs_.erase(seq);
    failed_seqs_.clear();
    if (answers_.empty()) {
      answers_.swap(batch_answers_);
    } else {
      std::move(batch_answers_.begin(), batch_answers_.end(),
                std::back_inserter(answers_));
      batch_answers_.clear();
    }
    // The ends of these wait for their answers from now on.
    for (uint64_t seq : late_seqs_) {
      auto it = open_seqs_.find(seq);
      if (it == open_seqs_.end()) continue;  // it failed meanwhile
      it->second = it->second == SeqState::kAnsweredEarly
                       ? SeqState::kAnswered
                       : SeqState::kAwaitingAnswer;
    }
    late_seqs_.clear();
    for (End& end : batch_ends_) SortEndLocked(std::move(end));
    batch_ends_.clear();
    // A hold in progress keeps these answers too, if they may wait.
    const bool held = holding_ && !batch_urgent_ && ends_.empty();
    write = !held && TakeWriteLocked() && !MaybeHoldLocked();
  }
  link_->Unref(settled);  // the call holds its own: never the last
  if (write) Flush();
}

void SessionCall::OnWrite(bool ok) {
  response_.Reset();
  bool again = false;
  {
    absl::MutexLock lock(&link_->mu);
    if (!ok) broken_ = true;  // the call is gone; the done tag follows
    again = !broken_ && !finishing_ && HasOutputLocked();
    if (again) {
      HoldLocked();  // the next write
    } else {
      writing_ = false;
    }
  }
  if (again) Flush();
  Advance();
  Release();
}

void SessionCall::OnAlarm(bool /*ok*/) {
  {
    absl::MutexLock lock(&link_->mu);
    alarm_stopped_ = true;
  }
  Advance();
  Release();
}

void SessionCall::OnHoldAlarm(bool /*ok*/) {
  bool flush = false;
  bool give_back = false;
  {
    absl::MutexLock lock(&link_->mu);
    hold_alarm_set_ = false;
    if (std::exchange(holding_, false)) {
      // The write is this thread's now.
      if (broken_) {
        writing_ = false;
        give_back = true;
      } else {
        flush = true;
      }
    }
  }
  if (flush) Flush();
  Advance();
  if (give_back) Release();  // the write
  Release();                 // the alarm
}

void SessionCall::OnCallDone() {
  // Finished by us, or cancelled: the client went away, its deadline
  // passed, or the server cut the call.
  call_done_ = true;
  if (context().IsCancelled()) {
    absl::MutexLock lock(&link_->mu);
    broken_ = true;
    StopHoldAlarmLocked();
  }
  Advance();
}

void SessionCall::OnFinished(bool /*ok*/) { Release(); }

void SessionCall::ClaimSeqsLocked(const v1::SessionRequest& request) {
  duplicates_.clear();
  duplicates_seen_ = 0;
  size_t index = 0;
  for (const v1::SessionSubmit& submit : request.submits()) {
    if (!open_seqs_.try_emplace(submit.seq(), SeqState::kAnswered).second) {
      duplicates_.push_back(index);
    }
    ++index;
  }
  for (const v1::SessionWatch& watch : request.watches()) {
    if (!open_seqs_.try_emplace(watch.seq(), SeqState::kAnswered).second) {
      duplicates_.push_back(index);
    }
    ++index;
  }
}

bool SessionCall::RefuseDuplicate(size_t index, uint64_t seq) {
  if (duplicates_seen_ == duplicates_.size() ||
      duplicates_[duplicates_seen_] != index) {
    return false;
  }
  ++duplicates_seen_;
  Answer(seq, std::string(),
         absl::InvalidArgumentError(absl::StrCat(
             "seq ", seq,
             " is already used by a submit or watch of this session that has "
             "not ended")));
  return true;
}

template <typename Invoke>
void SessionCall::MakeCall(Item item, uint64_t seq, Invoke invoke) {
  InlineCall call{.call = this, .item = item, .seq = seq};
  InlineCall* const outer = std::exchange(inline_call_, &call);
  ++batch_calls_;
  invoke();
  inline_call_ = outer;
  if (!call.answered && item != Item::kCancel) late_seqs_.push_back(seq);
}

void SessionCall::Submit(const v1::SessionSubmit& submit) {
  if (absl::Status status = ReserveSlot(); !status.ok()) {
    return Fail(submit.seq(), std::move(status));
  }
  if (absl::Status allowed = identity_.MaySubmit(submit.request().function());
      !allowed.ok()) {
    return Fail(submit.seq(), std::move(allowed));
  }
  absl::StatusOr<executor::TaskSpec> spec = TaskSpecFromProto(submit.request());
  if (!spec.ok()) return Fail(submit.seq(), spec.status());
  const uint64_t seq = submit.seq();
  // Counted first: the task may end before it is answered. A refusal gives
  // both back.
  open_tasks_.fetch_add(1, std::memory_order_relaxed);
  link_->Ref();  // the task's, dropped by OnTaskDone
  MakeCall(Item::kSubmit, seq, [&] {
    env().tasks->SubmitAsync(
        *std::move(spec), identity_.caller(), link_, seq,
        [link = link_, seq](absl::StatusOr<executor::TaskSnapshot> task) {
          if (!task.ok()) {
            return Deliver(link, Item::kSubmit, seq, std::string(),
                           task.status());
          }
          Deliver(link, Item::kSubmit, seq, std::move(task->id),
                  absl::OkStatus());
        });
  });
}

void SessionCall::Watch(const v1::SessionWatch& watch) {
  if (absl::Status status = identity_.Require(auth::kRead); !status.ok()) {
    return Fail(watch.seq(), std::move(status));
  }
  if (absl::Status status = ReserveSlot(); !status.ok()) {
    return Fail(watch.seq(), std::move(status));
  }
  const uint64_t seq = watch.seq();
  // Counted first: the end may come before the answer.
  open_tasks_.fetch_add(1, std::memory_order_relaxed);
  link_->Ref();  // the watch's, dropped by OnTaskDone
  MakeCall(Item::kWatch, seq, [&] {
    env().tasks->OnDoneAsync(
        watch.id(), link_->ReportTo(seq), identity_.caller(),
        [link = link_, seq, id = watch.id()](absl::Status status) mutable {
          if (!status.ok()) id.clear();
          Deliver(link, Item::kWatch, seq, std::move(id), std::move(status));
        });
  });
}

void SessionCall::Cancel(const v1::SessionCancel& cancel) {
  if (absl::Status status = identity_.Require(auth::kSubmit); !status.ok()) {
    return Answer(cancel.seq(), cancel.id(), std::move(status));
  }
  const uint64_t seq = cancel.seq();
  MakeCall(Item::kCancel, seq, [&] {
    env().tasks->CancelAsync(
        cancel.id(), identity_.caller(),
        [link = link_, seq](absl::StatusOr<executor::TaskSnapshot> task) {
          if (!task.ok()) {
            return Deliver(link, Item::kCancel, seq, std::string(),
                           task.status());
          }
          Deliver(link, Item::kCancel, seq, std::move(task->id),
                  absl::OkStatus());
        });
  });
}

void SessionCall::Deliver(SessionLink* link, Item item, uint64_t seq,
                          std::string id, absl::Status status) {
  // Inline: the poller, inside the very call this answers.
  if (InlineCall* call = inline_call_;
      call != nullptr && call->call->link_ == link && call->item == item &&
      call->seq == seq && !call->answered) {
    call->answered = true;
    return call->call->AnswerInline(item, seq, std::move(id),
                                    std::move(status));
  }
  const bool refused = !status.ok() && item != Item::kCancel;
  SessionCall* writer = nullptr;
  {
    absl::MutexLock lock(&link->mu);
    if (SessionCall* call = link->call; call != nullptr) {
      call->AssertLinkHeld();
      if (call->AnswerLateLocked(item, seq, std::move(id), std::move(status))) {
        writer = call;
      }
    }
  }
  // This thread sends the answer itself. The call cannot go while it holds
  // the write, nor the link while the call is there.
  if (writer != nullptr) writer->Flush();
  if (refused) link->Unref();  // the task's or watch's: no end will come
  link->Unref();               // the answer's
}

void SessionCall::AnswerInline(Item item, uint64_t seq, std::string id,
                               absl::Status status) {
  ++batch_inline_answers_;
  if (item == Item::kCancel) batch_urgent_ = true;
  if (!status.ok() && item != Item::kCancel) {
    // Refused: no end will come. The call holds the link: never the last.
    open_tasks_.fetch_sub(1, std::memory_order_relaxed);
    link_->Unref();
    return Fail(seq, std::move(status));
  }
  Answer(seq, std::move(id), std::move(status));
}

bool SessionCall::AnswerLateLocked(Item item, uint64_t seq, std::string id,
                                   absl::Status status) {
  --unanswered_;
  std::optional<executor::TaskSnapshot> parked;
  if (item != Item::kCancel) {
    if (!status.ok()) {
      // Refused: its seq is free again, and it follows no task (nor end).
      open_tasks_.fetch_sub(1, std::memory_order_relaxed);
      open_seqs_.erase(seq);
      parked_ends_.erase(seq);
    } else if (auto it = open_seqs_.find(seq); it != open_seqs_.end()) {
      switch (it->second) {
        case SeqState::kAnswered:  // its batch is still being handled
          it->second = SeqState::kAnsweredEarly;
          break;
        case SeqState::kAwaitingAnswer:
          it->second = SeqState::kAnswered;
          break;
        case SeqState::kEndParked: {
          auto end = parked_ends_.find(seq);
          parked.emplace(std::move(end->second));
          parked_ends_.erase(end);
          open_seqs_.erase(it);
          break;
        }
        case SeqState::kAnsweredEarly:
          break;
      }
    }
  }
  if (broken_ || finishing_) return false;  // nobody to tell
  answers_.push_back({seq, std::move(id), std::move(status)});
  // After its answer: no end overtakes the answers queued before it.
  if (parked.has_value()) ends_.push_back({seq, *std::move(parked)});
  return TakeWriteLocked();
}

void SessionCall::Answer(uint64_t seq, std::string id, absl::Status status) {
  if (!status.ok()) batch_urgent_ = true;
  batch_answers_.push_back({seq, std::move(id), std::move(status)});
}

void SessionCall::Fail(uint64_t seq, absl::Status status) {
  failed_seqs_.push_back(seq);
  Answer(seq, std::string(), std::move(status));
}

absl::Status SessionCall::ReserveSlot() const {
  const int64_t open = open_tasks_.load(std::memory_order_relaxed);
  if (open < env().sessions->window()) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("the session already follows ", open,
                   " unfinished tasks (its window); wait for some to end"));
}

bool SessionCall::AddEndLocked(uint64_t seq,
                               const executor::TaskSnapshot& task) {
  open_tasks_.fetch_sub(1, std::memory_order_relaxed);
  if (handling_batch_) {
    // Its answer may be among the batch's: sorted when the batch ends.
    batch_ends_.push_back({seq, task});
    return false;
  }
  SortEndLocked({seq, task});
  return TakeWriteLocked();
}

void SessionCall::SortEndLocked(End end) {
  auto it = open_seqs_.find(end.seq);
  if (it != open_seqs_.end()) {
    if (it->second == SeqState::kAwaitingAnswer) {
      it->second = SeqState::kEndParked;
      parked_ends_.emplace(end.seq, std::move(end.task));
      return;
    }
    open_seqs_.erase(it);
  }
  if (broken_ || finishing_) return;  // nobody to tell
  ends_.push_back(std::move(end));
}

bool SessionCall::TakeWriteLocked() {
  if (holding_ && !broken_) {
    // What comes now goes at once, with what the hold kept.
    holding_ = false;
    StopHoldAlarmLocked();
    return true;
  }
  if (writing_ || finishing_ || broken_ || !HasOutputLocked()) return false;
  writing_ = true;
  HoldLocked();  // the write
  return true;
}

bool SessionCall::MaybeHoldLocked() {
  if (batch_urgent_ || !ends_.empty() || hold_alarm_set_ || closed_) {
    return false;
  }
  holding_ = true;
  hold_alarm_set_ = true;
  HoldLocked();  // the alarm
  hold_alarm_.Set(
      env().cq,
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_micros(kAnswerHoldMicros, GPR_TIMESPAN)),
      &hold_tag_);
  return true;
}

void SessionCall::StopHoldAlarmLocked() {
  if (hold_alarm_set_) hold_alarm_.Cancel();
}

bool SessionCall::HasOutputLocked() const {
  return !answers_.empty() || !ends_.empty();
}

void SessionCall::Flush() {
  for (;;) {
    {
      absl::MutexLock lock(&link_->mu);
      flush_answers_.swap(answers_);
      flush_ends_.swap(ends_);
    }
    v1::SessionResponse* response = response_.get();
    Fill(response);
    if (response->accepted_size() > 0 || response->failed_size() > 0 ||
        response->done_size() > 0) {
      return Write(*response);
    }
    // Nothing to send after all: give the write back, unless something
    // came meanwhile.
    bool last = false;
    {
      absl::MutexLock lock(&link_->mu);
      if (!broken_ && !finishing_ && HasOutputLocked()) continue;
      writing_ = false;
      last = ReleaseLocked();  // the write
    }
    if (last) Retire();
    return;
  }
}

void SessionCall::Write(const v1::SessionResponse& response) {
  write_buffer_.Clear();
  bool own_buffer = false;
  if (grpc::SerializationTraits<v1::SessionResponse>::Serialize(
          response, &write_buffer_, &own_buffer)
          .ok()) {
    stream_.Write(write_buffer_, &write_tag_);
    return;
  }
  // Too large to encode (over 2 GiB): cut the call, as a failed write would.
  context().TryCancel();
  bool last = false;
  {
    absl::MutexLock lock(&link_->mu);
    broken_ = true;
    writing_ = false;
    last = ReleaseLocked();  // the write
  }
  if (last) Retire();
}

void SessionCall::Fill(v1::SessionResponse* response) {
  size_t bytes = 0;
  size_t answered = 0;
  for (; answered < flush_answers_.size(); ++answered) {
    Reply& answer = flush_answers_[answered];
    const size_t size = kAnswerOverheadBytes + answer.id.size() +
                        answer.status.message().size();
    if (bytes > 0 && bytes + size > kMaxResponseBytes) break;
    bytes += size;
    if (answer.status.ok()) {
      v1::SessionAccepted* accepted = response->add_accepted();
      accepted->set_seq(answer.seq);
      accepted->set_id(std::move(answer.id));
    } else {
      v1::SessionFailed* failed = response->add_failed();
      failed->set_seq(answer.seq);
      common::ToTaskError(answer.status, failed->mutable_error());
    }
  }
  size_t taken = 0;
  if (answered == flush_answers_.size()) {
    for (; taken < flush_ends_.size(); ++taken) {
      const End& end = flush_ends_[taken];
      const size_t size = ApproximateBytes(end.task);
      if (bytes > 0 && bytes + size > kMaxResponseBytes) break;
      bytes += size;
      v1::SessionDone* done = response->add_done();
      done->set_seq(end.seq);
      TaskToProto(end.task, done->mutable_task());
    }
  }
  if (answered < flush_answers_.size() || taken < flush_ends_.size()) {
    // Over the budget: the rest goes in the next write. An end waits behind
    // every answer, so that none overtakes the answer to its item.
    absl::MutexLock lock(&link_->mu);
    answers_.insert(answers_.begin(),
                    std::make_move_iterator(flush_answers_.begin() + answered),
                    std::make_move_iterator(flush_answers_.end()));
    ends_.insert(ends_.begin(),
                 std::make_move_iterator(flush_ends_.begin() + taken),
                 std::make_move_iterator(flush_ends_.end()));
  }
  flush_answers_.clear();
  flush_ends_.clear();
}

void SessionCall::Advance() {
  MaybeRead();
  MaybeFinish();
}

void SessionCall::MaybeRead() {
  if (reading_ || reads_done_ || call_done_) return;
  {
    absl::MutexLock lock(&link_->mu);
    if (finishing_) return;
    if (writing_ && answers_.size() >= kMaxBufferedAnswers) return;
    HoldLocked();  // the read
  }
  reading_ = true;
  stream_.Read(&read_buffer_, &read_tag_);
}

void SessionCall::MaybeFinish() {
  absl::Status status;
  bool stop_alarm = false;
  {
    absl::MutexLock lock(&link_->mu);
    if (finishing_ || writing_) return;
    if (broken_) {
      status = absl::CancelledError();
    } else if (open_tasks_.load(std::memory_order_relaxed) > 0 ||
               unanswered_ > 0 || !answers_.empty() || !ends_.empty()) {
      return;  // still to report
    } else if (closed_) {
      status = absl::UnavailableError("the server is shutting down");
    } else if (!reads_done_) {
      return;
    } else {
      status = read_error_;
    }
    finishing_ = true;
    HoldLocked();  // the finish
    stop_alarm = !alarm_stopped_;
    alarm_stopped_ = true;
  }
  if (stop_alarm) alarm_.Cancel();
  RecordEnd(status.code());
  stream_.Finish(common::ToGrpcStatus(status), &finish_tag_);
}

}  // namespace remex::rpc
