// Channel creation for remex clients.
#ifndef REMEX_CLIENT_CHANNEL_H_
#define REMEX_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string_view>

#include "absl/time/time.h"

namespace remex::client {

// Largest message a remex client sends or receives (64 MiB).
inline constexpr int kMaxMessageBytes = 64 << 20;

// Returns a channel to `address` ("host:port", or any gRPC target name) with
// insecure credentials and kMaxMessageBytes limits. The channel connects
// lazily; creating it never fails. Thread-safe.
//
// While calls are open it pings the server every `keepalive` (at least 1 s,
// the most the server allows) and closes a connection whose server does not
// answer within `keepalive`, failing its calls with UNAVAILABLE, so that a
// server that hangs, or a peer gone without a reset, cannot leave a wait
// blocked forever; a connection attempt gets `keepalive` too. Zero or
// infinite: no pings, and gRPC's defaults.
std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address,
                                           absl::Duration keepalive);

}  // namespace remex::client

#endif  // REMEX_CLIENT_CHANNEL_H_
