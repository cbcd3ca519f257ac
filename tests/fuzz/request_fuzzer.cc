// The request → executor path of the front end (server/rpc/calls.cc): the
// bytes of a request message, parsed as gRPC parses them, mapped by
// proto_mapping and handed to a real executor, which validates them.
// Every request gets a task or a clear error of the request's own (never
// INTERNAL or UNKNOWN), a short valid-UTF-8 message, and an answer that a
// client can parse back.
//
// Input: one byte picking the method (Submit, List, Get/Cancel/Delete,
// Await, Session), then the request message's bytes.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/proto_time.h"
#include "remex/v1/executor.pb.h"
#include "server/executor/executor.h"
#include "server/executor/task_query.h"
#include "server/rpc/proto_mapping.h"
#include "tests/fuzz/fuzz_executor.h"

namespace remex::fuzz {
namespace {

// As the server's answers: a message that does not parse back (a string
// field that is not UTF-8, say) would fail in the client.
template <typename Message>
void CheckParsesBack(const Message& message) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) __builtin_trap();
  Message parsed;
  if (!parsed.ParseFromString(bytes)) __builtin_trap();
}

void CheckRequestError(const absl::Status& status) {
  if (status.ok()) return;
  if (!IsRequestError(status)) __builtin_trap();
  CheckErrorMessage(status);
}

void CheckTask(const absl::StatusOr<executor::TaskSnapshot>& task) {
  if (!task.ok()) return CheckRequestError(task.status());
  v1::Task proto;
  rpc::TaskToProto(*task, &proto);
  CheckParsesBack(proto);
}

void SubmitOne(const v1::SubmitRequest& request) {
  // The args as functions see them, and back (Task.result of echo).
  google::protobuf::Value round_trip;
  rpc::JsonToValue(rpc::JsonFromValue(request.args()), &round_trip);
  absl::StatusOr<executor::TaskSpec> spec = rpc::TaskSpecFromProto(request);
  if (!spec.ok()) {
    if (spec.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return CheckErrorMessage(spec.status());
  }
  CheckTask(FuzzExecutor().Submit(*std::move(spec)));
}

void Submit(const std::string& bytes) {
  v1::SubmitRequest request;
  if (!request.ParseFromString(bytes)) return;
  SubmitOne(request);
}

// A Session's batch, item by item as SessionCall::HandleBatch maps them:
// each submit as Submit, each watch as a lookup, each cancel as Cancel.
void Session(const std::string& bytes) {
  v1::SessionRequest request;
  if (!request.ParseFromString(bytes)) return;
  executor::Executor& executor = FuzzExecutor();
  for (const v1::SessionSubmit& submit : request.submits()) {
    SubmitOne(submit.request());
  }
  for (const v1::SessionWatch& watch : request.watches()) {
    CheckTask(executor.Get(watch.id()));
  }
  for (const v1::SessionCancel& cancel : request.cancels()) {
    CheckTask(executor.Cancel(cancel.id()));
  }
}

void List(const std::string& bytes) {
  v1::ListRequest request;
  if (!request.ParseFromString(bytes)) return;
  absl::StatusOr<executor::ListQuery> query = rpc::ListQueryFromProto(request);
  if (!query.ok()) {
    if (query.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return CheckErrorMessage(query.status());
  }
  absl::StatusOr<executor::ListPage> page = FuzzExecutor().List(*query);
  if (!page.ok()) return CheckRequestError(page.status());
  v1::ListResponse response;
  // A small bound, so that pages are cut (and cut tokens made) often.
  rpc::ListPageToProto(*page, 4096, &response);
  CheckParsesBack(response);
  if (!response.next_page_token().empty() &&
      !executor::ParseListPageToken(response.next_page_token()).has_value()) {
    __builtin_trap();
  }
}

// Get, Cancel and Delete take an id and nothing else.
void ById(uint8_t method, const std::string& bytes) {
  v1::GetRequest request;
  if (!request.ParseFromString(bytes)) return;
  executor::Executor& executor = FuzzExecutor();
  switch (method % 3) {
    case 0:
      return CheckTask(executor.Get(request.id()));
    case 1:
      return CheckTask(executor.Cancel(request.id()));
    default:
      return CheckRequestError(executor.Delete(request.id()));
  }
}

// Await's timeout, as the front end reads it.
void Await(const std::string& bytes) {
  v1::AwaitRequest request;
  if (!request.ParseFromString(bytes)) return;
  if (request.has_timeout()) {
    absl::StatusOr<absl::Duration> timeout =
        common::FromProtoDuration(request.timeout(), "timeout");
    if (!timeout.ok()) {
      if (timeout.status().code() != absl::StatusCode::kInvalidArgument) {
        __builtin_trap();
      }
      CheckErrorMessage(timeout.status());
    }
  }
  CheckTask(FuzzExecutor().Get(request.id()));
}

}  // namespace
}  // namespace remex::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t method = data[0];
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (method % 5) {
    case 0:
      remex::fuzz::Submit(bytes);
      break;
    case 1:
      remex::fuzz::List(bytes);
      break;
    case 2:
      remex::fuzz::ById(method / 5, bytes);
      break;
    case 3:
      remex::fuzz::Await(bytes);
      break;
    default:
      remex::fuzz::Session(bytes);
      break;
  }
  return 0;
}
