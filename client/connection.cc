#include "client/connection.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <utility>

#include "client/channel.h"
#include "client/task_state.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"

namespace remex::client {

Connection::Connection(std::shared_ptr<grpc::Channel> channel,
                       absl::Duration rpc_timeout, std::string token)
    : rpc_timeout_(rpc_timeout),
      token_(std::move(token)),
      stub_(v1::Executor::NewStub(channel)) {}

template <class Request, class Response>
absl::StatusOr<Response> Connection::Call(
    grpc::Status (v1::Executor::StubInterface::*method)(grpc::ClientContext*,
                                                        const Request&,
                                                        Response*),
    const Request& request, absl::Duration deadline) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  AddBearerToken(context, token_);
  Response response;
  const grpc::Status status =
      (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return common::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Task> Connection::Submit(const v1::SubmitRequest& request) {
  return Call(&v1::Executor::StubInterface::Submit, request, rpc_timeout_);
}

absl::StatusOr<v1::Task> Connection::Await(const std::string& id,
                                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const absl::Duration remaining = deadline - absl::Now();
    absl::StatusOr<v1::Task> task =
        remaining <= absl::ZeroDuration()
            ? Get(id)
            : AwaitOnce(id, std::min(remaining, kMaxAwaitSlice));
    if (!task.ok() || IsTerminal(task->state()) || absl::Now() >= deadline) {
      return task;
    }
  }
}

absl::StatusOr<v1::Task> Connection::AwaitOnce(const std::string& id,
                                               absl::Duration timeout) {
  v1::AwaitRequest request;
  request.set_id(id);
  *request.mutable_timeout() = common::ToProtoDuration(timeout);
  return Call(&v1::Executor::StubInterface::Await, request,
              timeout + rpc_timeout_);
}

absl::StatusOr<v1::Task> Connection::Get(const std::string& id) {
  v1::GetRequest request;
  request.set_id(id);
  return Call(&v1::Executor::StubInterface::Get, request, rpc_timeout_);
}

absl::StatusOr<v1::Task> Connection::Cancel(const std::string& id) {
  v1::CancelRequest request;
  request.set_id(id);
  return Call(&v1::Executor::StubInterface::Cancel, request, rpc_timeout_);
}

absl::Status Connection::Delete(const std::string& id) {
  v1::DeleteRequest request;
  request.set_id(id);
  return Call(&v1::Executor::StubInterface::Delete, request, rpc_timeout_)
      .status();
}

absl::StatusOr<v1::ListResponse> Connection::List(
    const v1::ListRequest& request) {
  return Call(&v1::Executor::StubInterface::List, request, rpc_timeout_);
}

absl::StatusOr<v1::ListFunctionsResponse> Connection::ListFunctions() {
  return Call(&v1::Executor::StubInterface::ListFunctions,
              v1::ListFunctionsRequest(), rpc_timeout_);
}

}  // namespace remex::client
