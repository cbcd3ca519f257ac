// Conversions between remex.v1 messages and the executor's types.
#ifndef REMEX_SERVER_RPC_PROTO_MAPPING_H_
#define REMEX_SERVER_RPC_PROTO_MAPPING_H_

#include <google/protobuf/struct.pb.h>

#include "absl/status/statusor.h"
#include "remex/v1/executor.pb.h"
#include "server/executor/executor.h"
#include "server/executor/task.h"

namespace remex::rpc {

// Numbers that are whole and fit an int64 become JSON integers, so that
// functions see {"n": 5}, not {"n": 5.0}.
executor::Json JsonFromValue(const google::protobuf::Value& value);
void JsonToValue(const executor::Json& json, google::protobuf::Value* value);

// INVALID_ARGUMENT for a malformed duration or a negative max_attempts.
absl::StatusOr<executor::TaskSpec> TaskSpecFromProto(
    const v1::SubmitRequest& request);
void TaskToProto(const executor::TaskSnapshot& snapshot, v1::Task* task);

// INVALID_ARGUMENT for a negative page size or an unknown state number.
absl::StatusOr<executor::ListQuery> ListQueryFromProto(
    const v1::ListRequest& request);

void FunctionsToProto(const executor::Executor& executor,
                      v1::ListFunctionsResponse* response);

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_PROTO_MAPPING_H_
