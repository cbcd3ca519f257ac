// Server TLS: the listening port's credentials from a certificate, its key
// and (for mTLS) a client CA, reloadable while the server runs; and the
// verified client certificate's common name, the principal of mTLS.
//
// Why gRPC core's certificate config fetcher
// (grpc_ssl_server_credentials_create_options_using_config_fetcher) and not
// the C++ API of gRPC 1.51:
//  - grpc::SslServerCredentials and StaticDataCertificateProvider are fixed
//    for the server's life: a new certificate would mean a new server, and
//    every open connection and Session stream dropped.
//  - FileWatcherCertificateProvider re-reads its files on its own timer only
//    (no reload on demand, so no SIGHUP), checks no key against its
//    certificate, and when a file cannot be read it drops the old material
//    and fails every new handshake until the file is back.
//  - The fetcher is asked by gRPC at the start of every new handshake; it
//    answers "unchanged" until Reload() has validated new files, then hands
//    over the new material once. Connections already up keep the TLS
//    session they have; a file that fails validation never reaches gRPC.
#ifndef REMEX_SERVER_AUTH_TLS_H_
#define REMEX_SERVER_AUTH_TLS_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace remex::auth {

// The PEM files of a TLS server.
struct ServerTlsFiles {
  // The server's certificate chain (leaf first).
  std::string cert;
  // The private key of the leaf certificate.
  std::string key;
  // CAs that sign client certificates. Empty: clients are not asked for a
  // certificate. Set: every client must present one signed by them (mTLS).
  std::string client_ca;
};

namespace internal {
struct TlsState;
}  // namespace internal

// The TLS material of a server, read from files, checked, and swapped in on
// Reload() for the handshakes that follow.
//
// Thread-safe. Credentials made by MakeCredentials() share the material with
// this object and stay valid after it is gone.
class ServerTls {
 public:
  // Reads and checks the files: each readable, the certificate and the CA
  // holding at least one PEM certificate, the key a PEM private key that
  // matches the certificate. The error names the file and what is wrong.
  static absl::StatusOr<std::unique_ptr<ServerTls>> Create(
      ServerTlsFiles files);
  ~ServerTls();
  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;

  // Credentials for one listening port (ServerBuilder::AddListeningPort):
  // TLS with the current material, and with a client CA, client
  // certificates required and verified. Call once per port: each result
  // follows reloads on its own. The result must outlive the grpc::Server
  // that listens with it (keep it next to the server).
  std::shared_ptr<grpc::ServerCredentials> MakeCredentials() const;

  // Re-reads the same files and checks them as Create does. OK: every
  // handshake from now on uses the new certificate, key and CA; connections
  // (and their streams) already open go on with what they negotiated.
  // Otherwise the error says which file is wrong and why, and the material
  // in use stays as it was.
  absl::Status Reload();

  const ServerTlsFiles& files() const { return files_; }
  bool requires_client_certificate() const { return !files_.client_ca.empty(); }

 private:
  ServerTls(ServerTlsFiles files, std::shared_ptr<internal::TlsState> state);

  const ServerTlsFiles files_;
  const std::shared_ptr<internal::TlsState> state_;
};

// The subject common name of the client certificate that the TLS handshake
// verified (the mTLS principal); empty without one (plaintext, TLS without
// a client CA, or a certificate without a CN).
std::string PeerCommonName(const grpc::AuthContext& auth_context);
std::string PeerCommonName(const grpc::ServerContextBase& context);

}  // namespace remex::auth

#endif  // REMEX_SERVER_AUTH_TLS_H_
