#include "client/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <string>

namespace remex::client {

std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address,
                                           const ChannelOptions& options) {
  const absl::Duration keepalive = options.keepalive;
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
  if (!options.tls) {
    return grpc::CreateCustomChannel(
        std::string(address), grpc::InsecureChannelCredentials(), arguments);
  }
  if (!options.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(options.tls_server_name);
  }
  // A client certificate needs both halves: half of one is not handed to
  // gRPC (no certificate is sent, and an mTLS server refuses the client).
  const bool client_certificate =
      !options.tls_cert_chain.empty() && !options.tls_private_key.empty();
  return grpc::CreateCustomChannel(
      std::string(address),
      grpc::SslCredentials(
          {.pem_root_certs = options.tls_root_certs,
           .pem_private_key =
               client_certificate ? options.tls_private_key : std::string(),
           .pem_cert_chain =
               client_certificate ? options.tls_cert_chain : std::string()}),
      arguments);
}

std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address,
                                           absl::Duration keepalive) {
  return MakeChannel(address, ChannelOptions{.keepalive = keepalive});
}

void AddBearerToken(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace remex::client
