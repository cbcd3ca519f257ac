// One call class per method of remex.v1.Executor.
#ifndef REMEX_SERVER_RPC_CALLS_H_
#define REMEX_SERVER_RPC_CALLS_H_

#include <grpcpp/alarm.h>

#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "server/rpc/call.h"

namespace remex::rpc {

using AsyncService = v1::Executor::AsyncService;

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

// Links a parked Await to its task's done callback, which runs on whatever
// thread ends the task: the callback stores the terminal snapshot and fires
// the call's alarm early, so the answer is sent from the poller thread.
//
// Thread-safe. Shared by the call and the callback; the call detaches it
// before it is destroyed, after which Wake does nothing.
class AwaitWaker {
 public:
  void Attach(grpc::Alarm* alarm);
  void Detach();
  void Wake(const executor::TaskSnapshot& snapshot);
  std::optional<executor::TaskSnapshot> TakeSnapshot();

 private:
  absl::Mutex mu_;
  grpc::Alarm* alarm_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::optional<executor::TaskSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
};

// Await parks without a thread: a grpc::Alarm set at the await timeout is
// the only pending operation besides the call itself; the task's end (or
// the client going away) cancels the alarm, which completes at once.
//
// Every operation starts and completes on the call's poller: it counts its
// lifetime with LongLivedCall's poller-only Hold and Release.
class AwaitCall final : public LongLivedCall<AwaitCall> {
 public:
  static constexpr auto kMethod = monitoring::RpcMethod::kAwait;

 private:
  friend class LongLivedCall<AwaitCall>;

  explicit AwaitCall(const CallEnv& env) : LongLivedCall(env) {}
  ~AwaitCall();

  void RequestCall(Tag* tag);
  void Start();
  void OnCallDone();
  void OnAlarm(bool ok);
  void OnFinished(bool ok);

  void Park(const executor::TaskSnapshot& snapshot);
  // Answers with the task, or with the error.
  void ReplyWithTask(const absl::StatusOr<executor::TaskSnapshot>& task);

  CallerIdentity identity_;
  v1::AwaitRequest request_;
  grpc::ServerAsyncResponseWriter<v1::Task> responder_{&context()};
  grpc::Alarm alarm_;
  bool alarm_set_ = false;
  bool replied_ = false;
  // The done tag came back: the call is over.
  bool ended_ = false;
  std::shared_ptr<AwaitWaker> waker_;
  MemberTag<AwaitCall> alarm_tag_{this, &AwaitCall::OnAlarm};
  MemberTag<AwaitCall> finish_tag_{this, &AwaitCall::OnFinished};
};

// Asks gRPC for the first call of every method on env.cq, `count` times
// over (so that that many calls of a method can be matched at once).
void SpawnCalls(const CallEnv& env, int count);

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_CALLS_H_
