// Conversions between remex.v1 messages and the executor's types.
#ifndef REMEX_SERVER_RPC_PROTO_MAPPING_H_
#define REMEX_SERVER_RPC_PROTO_MAPPING_H_

#include <google/protobuf/struct.pb.h>

#include "absl/status/statusor.h"
#include "remex/v1/executor.pb.h"
#include "server/executor/executor.h"
#include "server/executor/task.h"
#include "server/rpc/task_service.h"

namespace remex::rpc {

// Numbers that are whole and fit an int64 become JSON integers, so that
// functions see {"n": 5}, not {"n": 5.0}.
executor::Json JsonFromValue(const google::protobuf::Value& value);
void JsonToValue(const executor::Json& json, google::protobuf::Value* value);

// Only maps: the executor validates the spec (negative limits and the like)
// when it is submitted. INVALID_ARGUMENT only for a Duration that is not a
// well-formed google.protobuf.Duration (naming the field).
absl::StatusOr<executor::TaskSpec> TaskSpecFromProto(
    const v1::SubmitRequest& request);
// Casts: the two enums share their numbers (pinned in proto_mapping.cc).
// REQUIRES for StateFromProto: v1::State_IsValid(state), not unspecified.
v1::State StateToProto(executor::TaskState state);
executor::TaskState StateFromProto(v1::State state);

void TaskToProto(const executor::TaskSnapshot& snapshot, v1::Task* task);

// Maps a page of List, at most `max_bytes` encoded (less the bytes of
// next_page_token): the page stops before the task that would pass the
// bound, with a next_page_token (executor::ListPageToken) that resumes
// after that task's predecessor; a task that alone would pass it is listed
// trimmed (see v1.ListResponse).
void ListPageToProto(const executor::ListPage& page, size_t max_bytes,
                     v1::ListResponse* response);

// INVALID_ARGUMENT for a negative page size or an unknown state number.
absl::StatusOr<executor::ListQuery> ListQueryFromProto(
    const v1::ListRequest& request);

void FunctionsToProto(const TaskService& tasks,
                      v1::ListFunctionsResponse* response);

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_PROTO_MAPPING_H_
