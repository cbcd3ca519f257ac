// Conversions between absl time types and google.protobuf well-known types.
#ifndef REMEX_COMMON_PROTO_TIME_H_
#define REMEX_COMMON_PROTO_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace remex::common {

// INVALID_ARGUMENT naming `field` for a Duration that is not well formed:
// nanos outside ±999,999,999, seconds beyond ±315,576,000,000 (10,000
// years), or seconds and nanos of opposite signs.
absl::StatusOr<absl::Duration> FromProtoDuration(
    const google::protobuf::Duration& duration, absl::string_view field);
google::protobuf::Duration ToProtoDuration(absl::Duration duration);
// An unset time (absl::InfinitePast()) leaves `timestamp` cleared.
void SetProtoTimestamp(absl::Time time, google::protobuf::Timestamp* timestamp);

}  // namespace remex::common

#endif  // REMEX_COMMON_PROTO_TIME_H_
