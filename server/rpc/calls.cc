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
  ReplyWithTask(executor().Submit(*std::move(spec), caller()));
}

void GetCall::Handle() {
  ReplyWithTask(executor().Get(request().id(), caller()));
}

void CancelCall::Handle() {
  ReplyWithTask(executor().Cancel(request().id(), caller()));
}

void ListCall::Handle() {
  absl::StatusOr<executor::ListQuery> query = ListQueryFromProto(request());
  if (!query.ok()) return ReplyError(query.status());
  absl::StatusOr<executor::ListPage> page = executor().List(*query, caller());
  if (!page.ok()) return ReplyError(page.status());
  v1::ListResponse response;
  ListPageToProto(*page, kListPageBytes, &response);
  Reply(response);
}

void DeleteCall::Handle() {
  absl::Status status = executor().Delete(request().id(), caller());
  if (!status.ok()) return ReplyError(status);
  Reply(google::protobuf::Empty());
}

void ListFunctionsCall::Handle() {
  v1::ListFunctionsResponse response;
  FunctionsToProto(executor(), &response);
  // Only what the caller may submit: the rest would only be refused.
  auto* functions = response.mutable_functions();
  functions->erase(std::remove_if(functions->begin(), functions->end(),
                                  [this](const v1::FunctionInfo& function) {
                                    return !identity().MayRun(function.name());
                                  }),
                   functions->end());
  Reply(response);
}

void AwaitWaker::Attach(grpc::Alarm* alarm) {
  absl::MutexLock lock(&mu_);
  alarm_ = alarm;
}

void AwaitWaker::Detach() {
  absl::MutexLock lock(&mu_);
  alarm_ = nullptr;
}

void AwaitWaker::Wake(const executor::TaskSnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  snapshot_ = snapshot;
  if (alarm_ != nullptr) alarm_->Cancel();
}

std::optional<executor::TaskSnapshot> AwaitWaker::TakeSnapshot() {
  absl::MutexLock lock(&mu_);
  return std::move(snapshot_);
}

void AwaitCall::RequestCall(Tag* tag) {
  env().service->RequestAwait(&context(), &request_, &responder_, env().cq,
                              env().cq, tag);
}

AwaitCall::~AwaitCall() {
  if (waker_ != nullptr) waker_->Detach();
  if (alarm_set_) env().stats->parked_awaits.fetch_sub(1);
}

void AwaitCall::Start() {
  absl::StatusOr<CallerIdentity> identity =
      Authorize(env().auth, context(), auth::kRead);
  if (!identity.ok()) return ReplyWithTask(identity.status());
  identity_ = *std::move(identity);
  const absl::StatusOr<absl::Duration> timeout = AwaitTimeout(request_);
  if (!timeout.ok()) return ReplyWithTask(timeout.status());
  absl::StatusOr<executor::TaskSnapshot> task =
      env().executor->Get(request_.id(), identity_.caller());
  const bool answer_now = !task.ok() || executor::IsTerminal(task->state) ||
                          *timeout <= absl::ZeroDuration();
  if (answer_now) {
    ReplyWithTask(task);
  } else {
    Park(*task);
  }
}

void AwaitCall::Park(const executor::TaskSnapshot& snapshot) {
  alarm_.Set(env().cq, AlarmDeadline(request_), &alarm_tag_);
  alarm_set_ = true;
  Hold();  // the alarm
  env().stats->parked_awaits.fetch_add(1);
  waker_ = std::make_shared<AwaitWaker>();
  waker_->Attach(&alarm_);
  std::weak_ptr<AwaitWaker> weak = waker_;
  const absl::Status status = env().executor->OnDone(
      snapshot.id,
      [weak](const executor::TaskSnapshot& done) {
        if (auto waker = weak.lock()) waker->Wake(done);
      },
      identity_.caller());
  if (!status.ok()) alarm_.Cancel();  // deleted meanwhile: answer now
}

void AwaitCall::OnAlarm(bool /*fired*/) {
  if (!replied_) {
    // The snapshot the task's end handed over, or (timeout, client gone)
    // the task as it stands.
    std::optional<executor::TaskSnapshot> done = waker_->TakeSnapshot();
    ReplyWithTask(done.has_value()
                      ? *std::move(done)
                      : env().executor->Get(request_.id(), identity_.caller()));
  }
  Release();
}

void AwaitCall::OnCallDone() {
  // The call ended: answered, cancelled by the client, past its deadline, or
  // cut by server shutdown. Stop waiting for the task in the last three.
  ended_ = true;
  if (alarm_set_ && !replied_) alarm_.Cancel();
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
  responder_.Finish(response, grpc::Status::OK, &finish_tag_);
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
