#include "server/rpc/calls.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "server/rpc/proto_mapping.h"
#include "server/rpc/session_call.h"

namespace remex::rpc {
namespace {

// Longer waits are treated as no limit (and keep gpr time arithmetic safe).
constexpr absl::Duration kLongestAwait = absl::Hours(24 * 365);

// The most a List page takes: the default receive limit of gRPC clients
// (4 MiB, so that any client can read it), less a margin for the page
// token and framing.
constexpr size_t kListPageBytes = (size_t{4} << 20) - (size_t{64} << 10);

// Unset: no limit. INVALID_ARGUMENT for a malformed or negative timeout
// (the executor has no Await: its rule lives here).
absl::StatusOr<absl::Duration> AwaitTimeout(const v1::AwaitRequest& request) {
  if (!request.has_timeout()) return absl::InfiniteDuration();
  absl::StatusOr<absl::Duration> timeout =
      common::FromProtoDuration(request.timeout(), "timeout");
  if (timeout.ok() && *timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "timeout must not be negative, got ", absl::FormatDuration(*timeout)));
  }
  return timeout;
}

// REQUIRES: AwaitTimeout(request) is OK.
gpr_timespec AlarmDeadline(const v1::AwaitRequest& request) {
  const absl::Duration timeout = *AwaitTimeout(request);
  if (timeout >= kLongestAwait) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_nanos(absl::ToInt64Nanoseconds(timeout), GPR_TIMESPAN));
}

}  // namespace

template <typename Derived, typename Request>
void TaskCall<Derived, Request>::ReplyWithTask(
    const absl::StatusOr<executor::TaskSnapshot>& task) {
  if (!task.ok()) return this->ReplyError(task.status());
  v1::Task response;
  TaskToProto(*task, &response);
  this->Reply(response);
}

void SubmitCall::Handle() {
  if (absl::Status allowed = identity().MaySubmit(request().function());
      !allowed.ok()) {
    return ReplyError(allowed);
  }
  absl::StatusOr<executor::TaskSpec> spec = TaskSpecFromProto(request());
  if (!spec.ok()) return ReplyError(spec.status());
  tasks().SubmitAsync(*std::move(spec), caller(), /*listener=*/nullptr,
                      /*tag=*/0,
                      [this](absl::StatusOr<executor::TaskSnapshot> task) {
                        ReplyWithTask(task);
                      });
}

void GetCall::Handle() {
  tasks().GetAsync(request().id(), caller(),
                   [this](absl::StatusOr<executor::TaskSnapshot> task) {
                     ReplyWithTask(task);
                   });
}

void CancelCall::Handle() {
  tasks().CancelAsync(request().id(), caller(),
                      [this](absl::StatusOr<executor::TaskSnapshot> task) {
                        ReplyWithTask(task);
                      });
}

void ListCall::Handle() {
  absl::StatusOr<executor::ListQuery> query = ListQueryFromProto(request());
  if (!query.ok()) return ReplyError(query.status());
  tasks().ListAsync(*std::move(query), caller(),
                    [this](absl::StatusOr<executor::ListPage> page) {
                      if (!page.ok()) return ReplyError(page.status());
                      v1::ListResponse response;
                      ListPageToProto(*page, kListPageBytes, &response);
                      Reply(response);
                    });
}

void DeleteCall::Handle() {
  tasks().DeleteAsync(request().id(), caller(), [this](absl::Status status) {
    if (!status.ok()) return ReplyError(status);
    Reply(google::protobuf::Empty());
  });
}

void ListFunctionsCall::Handle() {
  v1::ListFunctionsResponse response;
  FunctionsToProto(tasks(), &response);
  // Only what the caller may submit: the rest would only be refused.
  auto* functions = response.mutable_functions();
  functions->erase(std::remove_if(functions->begin(), functions->end(),
                                  [this](const v1::FunctionInfo& function) {
                                    return !identity().MayRun(function.name());
                                  }),
                   functions->end());
  Reply(response);
}

bool AwaitWaker::Arm(grpc::Alarm* alarm, grpc::ServerCompletionQueue* cq,
                     gpr_timespec deadline, Tag* tag, Awaited what) {
  absl::MutexLock lock(&mu_);
  if ((what == Awaited::kTask && task_.has_value()) ||
      (what == Awaited::kEnd && end_.has_value())) {
    return false;
  }
  alarm->Set(cq, deadline, tag);
  alarm_ = alarm;
  awaited_ = what;
  return true;
}

void AwaitWaker::Disarm() {
  absl::MutexLock lock(&mu_);
  alarm_ = nullptr;
  awaited_ = Awaited::kNothing;
}

void AwaitWaker::CancelAlarm() {
  absl::MutexLock lock(&mu_);
  if (alarm_ != nullptr) alarm_->Cancel();
}

void AwaitWaker::SetTask(absl::StatusOr<executor::TaskSnapshot> task) {
  absl::MutexLock lock(&mu_);
  task_ = std::move(task);
  if (alarm_ != nullptr && awaited_ == Awaited::kTask) alarm_->Cancel();
}

void AwaitWaker::SetEnd(absl::StatusOr<executor::TaskSnapshot> end) {
  absl::MutexLock lock(&mu_);
  if (end_.has_value()) return;  // the first word stands
  end_ = std::move(end);
  if (alarm_ != nullptr && awaited_ == Awaited::kEnd) alarm_->Cancel();
}

std::optional<absl::StatusOr<executor::TaskSnapshot>> AwaitWaker::TakeTask() {
  absl::MutexLock lock(&mu_);
  return std::exchange(task_, std::nullopt);
}

std::optional<absl::StatusOr<executor::TaskSnapshot>> AwaitWaker::TakeEnd() {
  absl::MutexLock lock(&mu_);
  return std::exchange(end_, std::nullopt);
}

void AwaitCall::RequestCall(Tag* tag) {
  env().service->RequestAwait(&context(), &raw_request_, &responder_, env().cq,
                              env().cq, tag);
}

AwaitCall::~AwaitCall() {
  // Answers that come later find no alarm to cancel.
  if (waker_ != nullptr) waker_->Detach();
  if (parked_) env().stats->parked_awaits.fetch_sub(1);
}

void AwaitCall::Start() {
  absl::StatusOr<CallerIdentity> identity =
      Authorize(env().auth, context(), auth::kRead);
  if (!identity.ok()) return ReplyWithTask(identity.status());
  identity_ = *std::move(identity);
  if (absl::Status parsed = ParseRequest(raw_request_, request_);
      !parsed.ok()) {
    return ReplyWithTask(parsed);
  }
  const absl::StatusOr<absl::Duration> timeout = AwaitTimeout(request_);
  if (!timeout.ok()) return ReplyWithTask(timeout.status());
  may_wait_ = *timeout > absl::ZeroDuration();
  waker_ = std::make_shared<AwaitWaker>();
  GetTask();
}

void AwaitCall::GetTask() {
  std::weak_ptr<AwaitWaker> weak = waker_;
  env().tasks->GetAsync(request_.id(), identity_.caller(),
                        [weak](absl::StatusOr<executor::TaskSnapshot> task) {
                          if (auto waker = weak.lock()) {
                            waker->SetTask(std::move(task));
                          }
                        });
  // Not answered yet: the answer cancels the alarm, which brings it here.
  if (waker_->Arm(&alarm_, env().cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                  &alarm_tag_, AwaitWaker::Awaited::kTask)) {
    Hold();  // the alarm
    return;
  }
  OnTask(*waker_->TakeTask());
}

void AwaitCall::OnTask(absl::StatusOr<executor::TaskSnapshot> task) {
  const bool answer_now = stage_ == Stage::kFinalGet || ended_ || !task.ok() ||
                          executor::IsTerminal(task->state) || !may_wait_;
  if (answer_now) return ReplyWithTask(task);
  Park(*task);
}

void AwaitCall::Park(const executor::TaskSnapshot& snapshot) {
  stage_ = Stage::kParked;
  parked_ = true;
  env().stats->parked_awaits.fetch_add(1);
  // Armed before the registration: the end may come before it returns.
  (void)waker_->Arm(&alarm_, env().cq, AlarmDeadline(request_), &alarm_tag_,
                    AwaitWaker::Awaited::kEnd);
  Hold();  // the alarm
  std::weak_ptr<AwaitWaker> weak = waker_;
  env().tasks->OnDoneAsync(
      snapshot.id,
      [weak](const executor::TaskSnapshot& done) {
        if (auto waker = weak.lock()) waker->SetEnd(done);
      },
      identity_.caller(),
      [weak](absl::Status status) {
        // Deleted meanwhile: no end will come; answer now, with why.
        if (status.ok()) return;
        if (auto waker = weak.lock()) waker->SetEnd(std::move(status));
      });
}

void AwaitCall::OnAlarm(bool /*fired*/) {
  waker_->Disarm();
  if (!replied_) {
    if (stage_ == Stage::kParked) {
      // The task's end (or why none comes), or: the timeout passed or the
      // call ended.
      if (std::optional<absl::StatusOr<executor::TaskSnapshot>> end =
              waker_->TakeEnd()) {
        ReplyWithTask(*end);
      } else if (ended_) {
        ReplyWithTask(absl::CancelledError("the call ended"));
      } else {
        stage_ = Stage::kFinalGet;  // answer with the task as it stands
        GetTask();
      }
    } else if (std::optional<absl::StatusOr<executor::TaskSnapshot>> task =
                   waker_->TakeTask()) {
      OnTask(*std::move(task));
    } else {  // the call ended before the task call answered
      ReplyWithTask(absl::CancelledError("the call ended"));
    }
  }
  Release();
}

void AwaitCall::OnCallDone() {
  // The call ended: answered, cancelled by the client, past its deadline, or
  // cut by server shutdown. Stop waiting in the last three.
  ended_ = true;
  if (waker_ != nullptr && !replied_) waker_->CancelAlarm();
}

void AwaitCall::OnFinished(bool /*ok*/) { Release(); }

void AwaitCall::ReplyWithTask(
    const absl::StatusOr<executor::TaskSnapshot>& task) {
  replied_ = true;
  Hold();  // the finish
  // A call that ended before this answer was cancelled (by the client, its
  // deadline or the shutdown): the answer goes nowhere.
  RecordEnd(ended_ ? absl::StatusCode::kCancelled : task.status().code());
  if (!task.ok()) {
    responder_.FinishWithError(common::ToGrpcStatus(task.status()),
                               &finish_tag_);
    return;
  }
  v1::Task response;
  TaskToProto(*task, &response);
  grpc::ByteBuffer bytes;
  if (absl::Status serialized = SerializeResponse(response, bytes);
      !serialized.ok()) {
    responder_.FinishWithError(common::ToGrpcStatus(serialized), &finish_tag_);
    return;
  }
  responder_.Finish(bytes, grpc::Status::OK, &finish_tag_);
}

void SpawnCalls(const CallEnv& env, int count) {
  for (int i = 0; i < count; ++i) {
    SubmitCall::Spawn(env);
    AwaitCall::Spawn(env);
    GetCall::Spawn(env);
    CancelCall::Spawn(env);
    ListCall::Spawn(env);
    DeleteCall::Spawn(env);
    ListFunctionsCall::Spawn(env);
    SessionCall::Spawn(env);
  }
}

}  // namespace remex::rpc
