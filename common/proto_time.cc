#include "common/proto_time.h"

#include <cstdint>

namespace remex::common {

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) +
         absl::Nanoseconds(duration.nanos());
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
