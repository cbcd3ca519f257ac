// Conversions between absl time types and google.protobuf well-known types.
#ifndef REMEX_COMMON_PROTO_TIME_H_
#define REMEX_COMMON_PROTO_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace remex::common {

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration);
google::protobuf::Duration ToProtoDuration(absl::Duration duration);
// An unset time (absl::InfinitePast()) leaves `timestamp` cleared.
void SetProtoTimestamp(absl::Time time, google::protobuf::Timestamp* timestamp);

}  // namespace remex::common

#endif  // REMEX_COMMON_PROTO_TIME_H_
