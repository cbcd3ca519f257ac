// Channel creation for remex clients.
#ifndef REMEX_CLIENT_CHANNEL_H_
#define REMEX_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string_view>

namespace remex::client {

// Largest message a remex client sends or receives (64 MiB).
inline constexpr int kMaxMessageBytes = 64 << 20;

// Returns a channel to `address` ("host:port", or any gRPC target name) with
// insecure credentials and kMaxMessageBytes limits. The channel connects
// lazily; creating it never fails. Thread-safe.
std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address);

}  // namespace remex::client

#endif  // REMEX_CLIENT_CHANNEL_H_
