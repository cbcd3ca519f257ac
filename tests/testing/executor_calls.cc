#include "tests/testing/executor_calls.h"

#include <utility>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace remex::testing {

void AddSubmit(v1::SessionRequest& request, uint64_t seq,
               v1::SubmitRequest submit) {
  v1::SessionSubmit* item = request.add_submits();
  item->set_seq(seq);
  *item->mutable_request() = std::move(submit);
}

void AddSubmit(v1::SessionRequest& request, uint64_t seq,
               const std::string& function, const std::string& field,
               double value) {
  v1::SubmitRequest submit;
  submit.set_function(function);
  (*submit.mutable_args()->mutable_struct_value()->mutable_fields())[field]
      .set_number_value(value);
  AddSubmit(request, seq, std::move(submit));
}

void AddWatch(v1::SessionRequest& request, uint64_t seq,
              const std::string& id) {
  v1::SessionWatch* watch = request.add_watches();
  watch->set_seq(seq);
  watch->set_id(id);
}

void AddCancel(v1::SessionRequest& request, uint64_t seq,
               const std::string& id) {
  v1::SessionCancel* cancel = request.add_cancels();
  cancel->set_seq(seq);
  cancel->set_id(id);
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

ExecutorCalls::ExecutorCalls(const std::string& address)
    : stub_(v1::Executor::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

v1::Task ExecutorCalls::Submit(const v1::SubmitRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context, kRpcDeadline);
  v1::Task task;
  const grpc::Status status = stub_->Submit(&context, request, &task);
  EXPECT_TRUE(status.ok()) << "Submit: " << status.error_message();
  return task;
}

v1::Task ExecutorCalls::Await(const std::string& id, absl::Duration timeout) {
  v1::AwaitRequest request;
  request.set_id(id);
  request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
  grpc::ClientContext context;
  SetDeadline(context, timeout + kRpcDeadline);
  v1::Task task;
  const grpc::Status status = stub_->Await(&context, request, &task);
  EXPECT_TRUE(status.ok()) << "Await: " << status.error_message();
  return task;
}

v1::Task ExecutorCalls::Cancel(const std::string& id) {
  v1::CancelRequest request;
  request.set_id(id);
  grpc::ClientContext context;
  SetDeadline(context, kRpcDeadline);
  v1::Task task;
  const grpc::Status status = stub_->Cancel(&context, request, &task);
  EXPECT_TRUE(status.ok()) << "Cancel: " << status.error_message();
  return task;
}

v1::State ExecutorCalls::GetState(const std::string& id) {
  v1::GetRequest request;
  request.set_id(id);
  grpc::ClientContext context;
  SetDeadline(context, kRpcDeadline);
  v1::Task task;
  return stub_->Get(&context, request, &task).ok() ? task.state()
                                                   : v1::STATE_UNSPECIFIED;
}

}  // namespace remex::testing
