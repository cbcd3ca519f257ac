// One call class per method of remex.v1.Executor.
#ifndef REMEX_SERVER_RPC_CALLS_H_
#define REMEX_SERVER_RPC_CALLS_H_

#include <grpcpp/alarm.h>

#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/rpc/call.h"

namespace remex::rpc {

// The raw methods (see ExecutorService in call.h).
using AsyncService = ExecutorService;

// A unary call that answers with one Task.
template <typename Derived, typename Request>
class TaskCall : public UnaryCall<Derived, Request, v1::Task> {
 protected:
  using UnaryCall<Derived, Request, v1::Task>::UnaryCall;
  // Answers with the task, or with the error.
  void ReplyWithTask(const absl::StatusOr<executor::TaskSnapshot>& task);
};

class SubmitCall final : public TaskCall<SubmitCall, v1::SubmitRequest> {
 public:
  static constexpr auto kRequest = &AsyncService::RequestSubmit;
  static constexpr auto kMethod = monitoring::RpcMethod::kSubmit;
  static constexpr auto kRole = auth::kSubmit;
  using TaskCall::TaskCall;
  void Handle();
};

class GetCall final : public TaskCall<GetCall, v1::GetRequest> {
 public:
  static constexpr auto kRequest = &AsyncService::RequestGet;
  static constexpr auto kMethod = monitoring::RpcMethod::kGet;
  static constexpr auto kRole = auth::kRead;
  using TaskCall::TaskCall;
  void Handle();
};

class CancelCall final : public TaskCall<CancelCall, v1::CancelRequest> {
 public:
  static constexpr auto kRequest = &AsyncService::RequestCancel;
  static constexpr auto kMethod = monitoring::RpcMethod::kCancel;
  static constexpr auto kRole = auth::kSubmit;
  using TaskCall::TaskCall;
  void Handle();
};

class ListCall final
    : public UnaryCall<ListCall, v1::ListRequest, v1::ListResponse> {
 public:
  static constexpr auto kRequest = &AsyncService::RequestList;
  static constexpr auto kMethod = monitoring::RpcMethod::kList;
  static constexpr auto kRole = auth::kRead;
  using UnaryCall::UnaryCall;
  void Handle();
};

class DeleteCall final
    : public UnaryCall<DeleteCall, v1::DeleteRequest, google::protobuf::Empty> {
 public:
  static constexpr auto kRequest = &AsyncService::RequestDelete;
  static constexpr auto kMethod = monitoring::RpcMethod::kDelete;
  static constexpr auto kRole = auth::kSubmit;
  using UnaryCall::UnaryCall;
  void Handle();
};

class ListFunctionsCall final
    : public UnaryCall<ListFunctionsCall, v1::ListFunctionsRequest,
                       v1::ListFunctionsResponse> {
 public:
  static constexpr auto kRequest = &AsyncService::RequestListFunctions;
  static constexpr auto kMethod = monitoring::RpcMethod::kListFunctions;
  static constexpr auto kRole = auth::kRead;
  using UnaryCall::UnaryCall;
  void Handle();
};

// Brings what other threads tell an Await to its poller: the answer of a
// Get (the task as it stands) and the task's end (or why none will come).
// The call sets its alarm for what it waits for (Arm); the thread that
// brings it cancels the alarm, which then completes at once on the poller.
//
// Thread-safe. Shared by the call and the callbacks, which may outlive the
// call: it detaches before it is destroyed, after which nothing is
// cancelled.
class AwaitWaker {
 public:
  enum class Awaited { kNothing, kTask, kEnd };

  // Sets `alarm` to complete with `tag` at `deadline`, or as soon as `what`
  // comes. False, and no alarm set, if it has come already.
  bool Arm(grpc::Alarm* alarm, grpc::ServerCompletionQueue* cq,
           gpr_timespec deadline, Tag* tag, Awaited what);
  // The alarm completed: what comes now cancels nothing.
  void Disarm();
  // The call ended: cancels the alarm if it is set.
  void CancelAlarm();
  void Detach() { Disarm(); }

  void SetTask(absl::StatusOr<executor::TaskSnapshot> task);
  void SetEnd(absl::StatusOr<executor::TaskSnapshot> end);
  std::optional<absl::StatusOr<executor::TaskSnapshot>> TakeTask();
  std::optional<absl::StatusOr<executor::TaskSnapshot>> TakeEnd();

 private:
  absl::Mutex mu_;
  // Set while the call waits on it.
  grpc::Alarm* alarm_ ABSL_GUARDED_BY(mu_) = nullptr;
  Awaited awaited_ ABSL_GUARDED_BY(mu_) = Awaited::kNothing;
  std::optional<absl::StatusOr<executor::TaskSnapshot>> task_
      ABSL_GUARDED_BY(mu_);
  std::optional<absl::StatusOr<executor::TaskSnapshot>> end_
      ABSL_GUARDED_BY(mu_);
};

// Await asks for the task (GetAsync), then parks without a thread: a
// grpc::Alarm set at the await timeout is the only pending operation besides
// the call itself; the task's end (or the client going away) cancels the
// alarm, which completes at once. A task call that does not answer inline
// is waited for the same way, on an alarm without a deadline that its
// answer cancels.
//
// Every operation starts and completes on the call's poller, and so does
// every step of the call (the callbacks only reach the AwaitWaker): it
// counts its lifetime with LongLivedCall's poller-only Hold and Release.
class AwaitCall final : public LongLivedCall<AwaitCall> {
 public:
  static constexpr auto kMethod = monitoring::RpcMethod::kAwait;

 private:
  friend class LongLivedCall<AwaitCall>;

  // What the alarm, when set, waits for.
  enum class Stage {
    kGetting,   // the first Get's answer
    kParked,    // the task's end or the timeout
    kFinalGet,  // past the timeout: the Get of the task as it stands
  };

  explicit AwaitCall(const CallEnv& env) : LongLivedCall(env) {}
  ~AwaitCall();

  void RequestCall(Tag* tag);
  void Start();
  void OnCallDone();
  void OnAlarm(bool ok);
  void OnFinished(bool ok);

  // Gets the task; goes on in OnTask at once if the answer is inline, else
  // once the alarm brings it.
  void GetTask();
  void OnTask(absl::StatusOr<executor::TaskSnapshot> task);
  void Park(const executor::TaskSnapshot& snapshot);
  // Answers with the task, or with the error.
  void ReplyWithTask(const absl::StatusOr<executor::TaskSnapshot>& task);

  CallerIdentity identity_;
  grpc::ByteBuffer raw_request_;
  v1::AwaitRequest request_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_{&context()};
  grpc::Alarm alarm_;
  Stage stage_ = Stage::kGetting;
  // The timeout is above zero: a task that has not ended is waited for.
  bool may_wait_ = false;
  // Counted in FrontEndStats::parked_awaits.
  bool parked_ = false;
  bool replied_ = false;
  // The done tag came back: the call is over.
  bool ended_ = false;
  // Set by Start once the call is authorized.
  std::shared_ptr<AwaitWaker> waker_;
  MemberTag<AwaitCall> alarm_tag_{this, &AwaitCall::OnAlarm};
  MemberTag<AwaitCall> finish_tag_{this, &AwaitCall::OnFinished};
};

// Asks gRPC for the first call of every method on env.cq, `count` times
// over (so that that many calls of a method can be matched at once).
void SpawnCalls(const CallEnv& env, int count);

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_CALLS_H_
