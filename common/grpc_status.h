// The one place where absl::Status and grpc::Status are converted.
#ifndef REMEX_COMMON_GRPC_STATUS_H_
#define REMEX_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace remex::common {

// Codes share their numbers (both follow google.rpc.Code); messages are kept.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace remex::common

#endif  // REMEX_COMMON_GRPC_STATUS_H_
