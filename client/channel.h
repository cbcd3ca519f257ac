// Channel creation for remex clients.
#ifndef REMEX_CLIENT_CHANNEL_H_
#define REMEX_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace remex::client {

// Largest message a remex client sends or receives (64 MiB).
inline constexpr int kMaxMessageBytes = 64 << 20;

// How a channel reaches the server.
struct ChannelOptions {
  // See MakeChannel.
  absl::Duration keepalive = absl::ZeroDuration();
  // TLS instead of plaintext.
  bool tls = false;
  // PEM of the CAs the server's certificate must chain to; empty: the
  // system's roots.
  std::string tls_root_certs;
  // PEM client certificate chain and its private key, for servers that
  // require client certificates (mTLS); both or neither.
  std::string tls_cert_chain;
  std::string tls_private_key;
  // The name the server's certificate must carry; empty: the host of the
  // address.
  std::string tls_server_name;
};

// Returns a channel to `address` ("host:port", or any gRPC target name) with
// plaintext or TLS as `options` say and kMaxMessageBytes limits. The channel
// connects lazily; creating it never fails. Thread-safe.
//
// While calls are open it pings the server every `keepalive` (at least 1 s,
// the most the server allows) and closes a connection whose server does not
// answer within `keepalive`, failing its calls with UNAVAILABLE, so that a
// server that hangs, or a peer gone without a reset, cannot leave a wait
// blocked forever; a connection attempt gets `keepalive` too. Zero or
// infinite: no pings, and gRPC's defaults.
std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address,
                                           const ChannelOptions& options);
// Plaintext.
std::shared_ptr<grpc::Channel> MakeChannel(std::string_view address,
                                           absl::Duration keepalive);

// Adds `authorization: Bearer TOKEN` to a call; nothing for an empty token.
// Every call (the Session stream too) gets it through here rather than
// through grpc::AccessTokenCredentials, because gRPC refuses call
// credentials on a plaintext channel (it fails the call), and a token must
// work on loopback without TLS too.
void AddBearerToken(grpc::ClientContext& context, const std::string& token);

}  // namespace remex::client

#endif  // REMEX_CLIENT_CHANNEL_H_
