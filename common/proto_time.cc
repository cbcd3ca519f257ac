#include "common/proto_time.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace remex::common {

absl::StatusOr<absl::Duration> FromProtoDuration(
    const google::protobuf::Duration& duration, absl::string_view field) {
  // The range google/protobuf/duration.proto allows.
  constexpr int64_t kMaxSeconds = 315576000000;
  constexpr int32_t kMaxNanos = 999999999;
  const int64_t seconds = duration.seconds();
  const int32_t nanos = duration.nanos();
  if (seconds < -kMaxSeconds || seconds > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": seconds must be within ±", kMaxSeconds, ", got ", seconds));
  }
  if (nanos < -kMaxNanos || nanos > kMaxNanos) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": nanos must be within ±", kMaxNanos, ", got ", nanos));
  }
  if ((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": seconds and nanos must have the same sign"));
  }
  return absl::Seconds(seconds) + absl::Nanoseconds(nanos);
}

google::protobuf::Duration ToProtoDuration(absl::Duration duration) {
  google::protobuf::Duration proto;
  const int64_t nanos = absl::ToInt64Nanoseconds(duration);
  proto.set_seconds(nanos / 1000000000);
  proto.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return proto;
}

void SetProtoTimestamp(absl::Time time,
                       google::protobuf::Timestamp* timestamp) {
  if (time == absl::InfinitePast()) {
    timestamp->Clear();
    return;
  }
  const int64_t nanos = absl::ToUnixNanos(time);
  timestamp->set_seconds(nanos / 1000000000);
  timestamp->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

}  // namespace remex::common
