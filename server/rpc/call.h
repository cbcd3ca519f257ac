// Building blocks of the async completion-queue front end: tags, the base of
// every unary call and the base of the long-lived calls.
//
// Pattern (after gRPC's async examples and ray's server_call.h): each call
// object asks gRPC for the next call of its method, and once matched, first
// re-arms that request (so the method is always being served), then handles
// the call, then finishes it. A call object is deleted when its last pending
// completion-queue operation has returned, never earlier. Every
// completion-queue operation of one call completes on the one completion
// queue (and so the one poller thread) that the call was requested on.
//
// The task calls (env.tasks) answer through callbacks, inline on the poller
// or later on a thread of the store's: a poller never waits for them. So a
// call's answer, and what follows from it, may start on another thread; each
// call class says how it stays consistent (UnaryCall, AwaitCall,
// SessionCall).
#ifndef REMEX_SERVER_RPC_CALL_H_
#define REMEX_SERVER_RPC_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "monitoring/grpc_metrics.h"
#include "remex/v1/executor.grpc.pb.h"
#include "server/executor/executor.h"
#include "server/rpc/authorize.h"
#include "server/rpc/task_service.h"

namespace remex::rpc {

// Counters the front end keeps for the server (read by monitoring).
struct FrontEndStats {
  std::atomic<int64_t> parked_awaits{0};
};

class SessionRegistry;

// The service the calls are requested from. Every method is raw (bytes in,
// bytes out) and each call parses its request itself (ParseRequest): a
// request that does not parse (not protobuf, nested past protobuf's
// recursion limit, a string field that is not UTF-8) is INVALID_ARGUMENT,
// where gRPC's typed read answers INTERNAL "Unable to parse request" (and
// a Session's reports a half-close).
using ExecutorService =
    v1::Executor::WithRawMethod_Submit<v1::Executor::WithRawMethod_Await<
        v1::Executor::WithRawMethod_Get<v1::Executor::WithRawMethod_Cancel<
            v1::Executor::WithRawMethod_List<v1::Executor::WithRawMethod_Delete<
                v1::Executor::WithRawMethod_ListFunctions<
                    v1::Executor::WithRawMethod_Session<
                        v1::Executor::AsyncService>>>>>>>>;

// Parses the bytes of a request into `message` (consuming them), or
// INVALID_ARGUMENT naming the message type.
template <typename Message>
absl::Status ParseRequest(grpc::ByteBuffer& bytes, Message& message) {
  if (grpc::SerializationTraits<Message>::Deserialize(&bytes, &message).ok()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the request is not a valid ", Message::descriptor()->full_name(),
      " (not protobuf, nested too deeply, or a string field that is not "
      "valid UTF-8)"));
}

// Serializes an answer for a raw method; INTERNAL if it cannot be (over
// protobuf's 2 GiB limit).
template <typename Message>
absl::Status SerializeResponse(const Message& message,
                               grpc::ByteBuffer& bytes) {
  bool own_buffer = false;
  const grpc::Status status = grpc::SerializationTraits<Message>::Serialize(
      message, &bytes, &own_buffer);
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cannot serialize the answer: ", status.error_message()));
}

// Shared by every call requested on one completion queue. Not owned.
struct CallEnv {
  ExecutorService* service;
  grpc::ServerCompletionQueue* cq;
  // Where the task calls go (the executor, through ExecutorTaskService).
  TaskService* tasks;
  // Unary calls of this queue matched and not yet finished: the server
  // waits for none to be left before it shuts the queue down, since their
  // answers may come from a store's thread. One counter per queue, so that
  // pollers do not share it.
  std::atomic<int64_t>* unfinished_calls;
  FrontEndStats* stats;
  SessionRegistry* sessions;
  // Null: no metrics.
  monitoring::GrpcMetrics* metrics = nullptr;
  // Who may call; an open server when it has no authenticator.
  AuthEnv auth;
};

// Records a call's end in env.metrics, if there are metrics.
inline void RecordCall(const CallEnv& env, monitoring::RpcMethod method,
                       absl::StatusCode code, absl::Time started) {
  if (env.metrics != nullptr) {
    env.metrics->Record(method, code, absl::Now() - started);
  }
}

// What pollers get back from the completion queue.
class Tag {
 public:
  virtual void OnComplete(bool ok) = 0;

 protected:
  ~Tag() = default;
};

// A tag that calls `(call->*handler)(ok)`, so one call can own several
// distinct tags, one per kind of pending operation.
template <typename Call>
class MemberTag final : public Tag {
 public:
  using Handler = void (Call::*)(bool ok);
  MemberTag(Call* call, Handler handler) : call_(call), handler_(handler) {}
  void OnComplete(bool ok) override { (call_->*handler_)(ok); }

 private:
  Call* const call_;
  const Handler handler_;
};

// Base of the unary calls (all but Await). Derived defines:
//   static constexpr auto kRequest = &v1::Executor::AsyncService::RequestX;
//   static constexpr auto kMethod = monitoring::RpcMethod::kX;
//   static constexpr auto kRole = auth::kX;  // what the caller needs
//   void Handle();  // makes Reply() or ReplyError() happen, exactly once
// The base authorizes the call before Handle (which then finds the caller
// in caller()) and answers UNAUTHENTICATED or PERMISSION_DENIED itself.
//
// Thread-safety: the request, the identity and the start time are written
// on the poller before Handle, then only read. Handle runs on the poller; it
// may answer there, or hand the answer to a task call's callback, which may
// run on any thread, once: Reply and ReplyError are then called on that
// thread (gRPC lets any thread finish a call; the metrics are thread-safe).
// The call object lives until the finish has come back on the poller, so a
// callback may use it until it has answered, and must not touch it after.
template <typename Derived, typename Request, typename Response>
class UnaryCall {
 public:
  // Creates a call object waiting for the next call of the method on
  // env.cq. Ownership passes to the completion queue.
  static void Spawn(const CallEnv& env) {
    UnaryCall* call = new Derived(env);
    (env.service->*Derived::kRequest)(&call->context_, &call->raw_request_,
                                      &call->responder_, env.cq, env.cq,
                                      &call->request_tag_);
  }

 protected:
  explicit UnaryCall(const CallEnv& env) : env_(env) {}

  // Both count the call in the metrics before the answer can reach the
  // client. Either is the last use of the call by the thread that calls it
  // (the count of unfinished calls goes down once the finish is queued).
  void Reply(const Response& response) {
    grpc::ByteBuffer bytes;
    if (absl::Status serialized = SerializeResponse(response, bytes);
        !serialized.ok()) {
      return ReplyError(serialized);
    }
    RecordCall(env_, Derived::kMethod, absl::StatusCode::kOk, started_);
    std::atomic<int64_t>* const unfinished = env_.unfinished_calls;
    responder_.Finish(bytes, grpc::Status::OK, &finish_tag_);
    unfinished->fetch_sub(1, std::memory_order_release);
  }
  void ReplyError(const absl::Status& status) {
    RecordCall(env_, Derived::kMethod, status.code(), started_);
    std::atomic<int64_t>* const unfinished = env_.unfinished_calls;
    responder_.FinishWithError(common::ToGrpcStatus(status), &finish_tag_);
    unfinished->fetch_sub(1, std::memory_order_release);
  }

  TaskService& tasks() { return *env_.tasks; }
  const Request& request() const { return request_; }
  const CallerIdentity& identity() const { return identity_; }
  executor::Caller caller() const { return identity_.caller(); }

 private:
  void OnRequest(bool ok) {
    if (!ok) {  // the server is shutting down: no call was matched
      delete static_cast<Derived*>(this);
      return;
    }
    if (env_.metrics != nullptr) started_ = absl::Now();
    env_.unfinished_calls->fetch_add(1, std::memory_order_relaxed);
    Spawn(env_);
    absl::StatusOr<CallerIdentity> identity =
        Authorize(env_.auth, context_, Derived::kRole);
    if (!identity.ok()) return ReplyError(identity.status());
    identity_ = *std::move(identity);
    if (absl::Status parsed = ParseRequest(raw_request_, request_);
        !parsed.ok()) {
      return ReplyError(parsed);
    }
    static_cast<Derived*>(this)->Handle();
  }
  void OnFinished(bool /*ok*/) { delete static_cast<Derived*>(this); }

  const CallEnv env_;
  absl::Time started_;
  grpc::ServerContext context_;
  CallerIdentity identity_;
  grpc::ByteBuffer raw_request_;
  Request request_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_{&context_};
  MemberTag<UnaryCall> request_tag_{this, &UnaryCall::OnRequest};
  MemberTag<UnaryCall> finish_tag_{this, &UnaryCall::OnFinished};
};

// Base of the calls that stay open while something else happens (Await,
// Session; Watch when it comes): a counted lifetime instead of UnaryCall's
// one answer. Every operation started on the call (the request, the done
// notification, reads, writes, alarms, the finish) is counted by Hold()
// before it starts and by Release() when its tag has come back (or when it
// was not started after all); the last Release deletes the call. The base
// requests the call, holds the done notification from the match on and
// re-arms the method. Derived (a friend of this base) defines:
//   static constexpr auto kMethod = monitoring::RpcMethod::kX;
//   // Asks gRPC for the next call: env().service->RequestX(&context(),
//   // ..., env().cq, env().cq, tag).
//   void RequestCall(Tag* tag);
//   // The call was matched (the done notification is held already).
//   void Start();
//   // The call ended: finished, cancelled by the client, past its deadline
//   // or cut by shutdown; the base releases the notification afterwards.
//   void OnCallDone();
//
// Thread-safety: the base's members are written on the call's poller before
// any other thread can see the call, and read there; context() is the
// poller's. The pending count takes no lock of its own, so Derived
// serializes every Hold and Release of one call:
//  - a call whose operations all start and complete on its poller (Await,
//    which the answers of other threads reach through an alarm it waits
//    on) uses Hold() and Release() as they are;
//  - a call whose operations other threads start too (Session, where the
//    pool thread that ends a task, or the store thread that answers a
//    submit, may start a write; Watch alike) hides
//    Hold() and Release() with versions that count (CountHold and
//    CountRelease) under the mutex that guards what those threads see, so
//    that the last release and the unlinking from them are one step.
template <typename Derived>
class LongLivedCall {
 public:
  // Creates a call object waiting for the next call of the method on
  // env.cq. Ownership passes to the completion queue.
  static void Spawn(const CallEnv& env) {
    LongLivedCall* call = new Derived(env);
    // Must precede the request; its tag comes back only if a call is matched.
    call->context_.AsyncNotifyWhenDone(&call->done_tag_);
    call->CountHold();  // the request; no other thread knows the call yet
    call->self()->RequestCall(&call->request_tag_);
  }

 protected:
  explicit LongLivedCall(const CallEnv& env) : env_(env) {}
  ~LongLivedCall() = default;

  const CallEnv& env() const { return env_; }
  grpc::ServerContext& context() { return context_; }
  // Counts the call's end in the metrics, if there are metrics.
  void RecordEnd(absl::StatusCode code) const {
    RecordCall(env_, Derived::kMethod, code, started_);
  }

  // The poller-only count (see the class comment).
  void Hold() { CountHold(); }
  void Release() {
    if (CountRelease()) delete self();
  }
  void CountHold() { ++pending_; }
  // True when the operation returned was the last one: the caller deletes
  // the call.
  [[nodiscard]] bool CountRelease() { return --pending_ == 0; }

 private:
  Derived* self() { return static_cast<Derived*>(this); }

  void OnRequest(bool ok) {
    if (!ok) return self()->Release();  // shutting down: no done tag comes
    if (env_.metrics != nullptr) started_ = absl::Now();
    Spawn(env_);
    self()->Hold();  // the done tag
    self()->Start();
    self()->Release();  // the request tag
  }
  void OnDone(bool /*ok*/) {
    self()->OnCallDone();
    self()->Release();
  }

  const CallEnv env_;
  absl::Time started_;
  grpc::ServerContext context_;
  int pending_ = 0;
  MemberTag<LongLivedCall> request_tag_{this, &LongLivedCall::OnRequest};
  MemberTag<LongLivedCall> done_tag_{this, &LongLivedCall::OnDone};
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_CALL_H_
