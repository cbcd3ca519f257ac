#include "client/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <string>

namespace remex::client {

std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address,
                                           absl::Duration keepalive) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(kMaxMessageBytes);
  if (keepalive > absl::ZeroDuration() &&
      keepalive < absl::InfiniteDuration()) {
    const int millis = static_cast<int>(absl::ToInt64Milliseconds(
        std::clamp(keepalive, absl::Seconds(1), absl::Hours(24))));
    arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, millis);
    arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, millis);
    // Keep pinging a stream that waits for a long task to end.
    arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // A connection attempt gets as long as a ping (gRPC's name for this is
    // misleading: it bounds each attempt, not the pause between them).
    arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, millis);
  }
  return grpc::CreateCustomChannel(
      std::string(address), grpc::InsecureChannelCredentials(), arguments);
}

}  // namespace remex::client
