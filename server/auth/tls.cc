#include "server/auth/tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/grpc_security_constants.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace remex::auth {

// The PEM texts in use and a generation that each successful Reload bumps.
struct internal::TlsState {
  struct Material {
    std::string cert;
    std::string key;
    std::string client_ca;
  };

  absl::Mutex mu;
  Material material ABSL_GUARDED_BY(mu);
  uint64_t generation ABSL_GUARDED_BY(mu) = 1;
};

namespace {

using internal::TlsState;

absl::StatusOr<std::string> ReadWhole(const std::string& what,
                                      const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no file given"));
  }
  errno = 0;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, ": cannot read it",
                     error != 0 ? absl::StrCat(" (", std::strerror(error), ")")
                                : std::string()));
  }
  std::string text((std::istreambuf_iterator<char>(file)),
                   std::istreambuf_iterator<char>());
  if (file.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, ": cannot read it"));
  }
  return text;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The certificates of a PEM text, in order; an error if there is none or a
// PEM block does not parse.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& what,
                                                       const std::string& path,
                                                       const std::string& pem) {
  std::vector<X509Ptr> certificates;
  BioPtr bio = MemoryBio(pem);
  while (X509* certificate =
             PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.emplace_back(certificate);
  }
  // The loop ends on "no more PEM"; anything else is a broken block.
  const unsigned long error = ERR_peek_last_error();
  const bool clean_end = ERR_GET_LIB(error) == ERR_LIB_PEM &&
                         ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (error != 0 && !clean_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": a PEM certificate does not parse"));
  }
  if (certificates.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": no PEM certificate in it"));
  }
  return certificates;
}

// Reads and checks the three files; the material, or what is wrong.
absl::StatusOr<TlsState::Material> LoadMaterial(const ServerTlsFiles& files) {
  TlsState::Material material;
  REMEX_ASSIGN_OR_RETURN(material.cert,
                         ReadWhole("TLS certificate", files.cert));
  REMEX_ASSIGN_OR_RETURN(material.key, ReadWhole("TLS key", files.key));
  REMEX_ASSIGN_OR_RETURN(
      const std::vector<X509Ptr> chain,
      ParseCertificates("TLS certificate", files.cert, material.cert));
  BioPtr key_bio = MemoryBio(material.key);
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr,
                                     const_cast<char*>("")));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", files.key,
                     ": no PEM private key in it (or it is encrypted)"));
  }
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", files.key,
                     " does not match the certificate in ", files.cert));
  }
  if (!files.client_ca.empty()) {
    REMEX_ASSIGN_OR_RETURN(material.client_ca,
                           ReadWhole("TLS client CA", files.client_ca));
    REMEX_RETURN_IF_ERROR(
        ParseCertificates("TLS client CA", files.client_ca, material.client_ca)
            .status());
  }
  return material;
}

// grpc::ServerCredentials over gRPC core SSL credentials whose certificate
// config comes from `state` through the fetcher. gRPC 1.51 has no public
// C++ wrapper for core server credentials, so this one overrides the port
// hook that grpc::Server calls. Owns its core credentials (one reference).
class ReloadingCredentials final : public grpc::ServerCredentials {
 public:
  ReloadingCredentials(std::shared_ptr<TlsState> state, bool require_client)
      : state_(std::move(state)) {
    grpc_ssl_server_credentials_options* options =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            require_client
                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            &ReloadingCredentials::Fetch, this);
    credentials_ = grpc_ssl_server_credentials_create_with_options(options);
  }
  ~ReloadingCredentials() override {
    grpc_server_credentials_release(credentials_);
  }

  // remex checks tokens in its call classes, not in a metadata processor;
  // wrapping one for core credentials would need gRPC internals. Calling
  // this is a programming error, and silently ignoring a security hook
  // would be worse than stopping.
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    log::Error("internal_error",
               "AuthMetadataProcessor is not supported on reloadable TLS "
               "credentials");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), credentials_);
  }

  // Called by gRPC at the start of each handshake on this port (and once
  // when the port is added), under the port's own lock: hands over the
  // material once per generation.
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* user_data, grpc_ssl_server_certificate_config** config) {
    auto* self = static_cast<ReloadingCredentials*>(user_data);
    TlsState& state = *self->state_;
    absl::MutexLock lock(&state.mu);
    if (self->fetched_generation_.load(std::memory_order_relaxed) ==
        state.generation) {
      return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    const grpc_ssl_pem_key_cert_pair pair = {
        .private_key = state.material.key.c_str(),
        .cert_chain = state.material.cert.c_str()};
    // gRPC requires CA certificates here even when it asks clients for
    // none; without a client CA it gets the server's own chain, which
    // verifies nothing because no client is asked for a certificate.
    const std::string& roots = state.material.client_ca.empty()
                                   ? state.material.cert
                                   : state.material.client_ca;
    // Copies the strings.
    *config =
        grpc_ssl_server_certificate_config_create(roots.c_str(), &pair, 1);
    self->fetched_generation_.store(state.generation,
                                    std::memory_order_relaxed);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }

  const std::shared_ptr<TlsState> state_;
  grpc_server_credentials* credentials_ = nullptr;
  // The generation this port's handshakes use; written under state_->mu.
  std::atomic<uint64_t> fetched_generation_{0};
};

}  // namespace

ServerTls::ServerTls(ServerTlsFiles files, std::shared_ptr<TlsState> state)
    : files_(std::move(files)), state_(std::move(state)) {}

ServerTls::~ServerTls() = default;

absl::StatusOr<std::unique_ptr<ServerTls>> ServerTls::Create(
    ServerTlsFiles files) {
  REMEX_ASSIGN_OR_RETURN(TlsState::Material material, LoadMaterial(files));
  auto state = std::make_shared<TlsState>();
  {
    absl::MutexLock lock(&state->mu);
    state->material = std::move(material);
  }
  return std::unique_ptr<ServerTls>(
      new ServerTls(std::move(files), std::move(state)));
}

std::shared_ptr<grpc::ServerCredentials> ServerTls::MakeCredentials() const {
  return std::make_shared<ReloadingCredentials>(state_,
                                                requires_client_certificate());
}

absl::Status ServerTls::Reload() {
  absl::StatusOr<TlsState::Material> material = LoadMaterial(files_);
  if (!material.ok()) {
    return absl::Status(
        material.status().code(),
        absl::StrCat(material.status().message(),
                     "; the TLS files loaded before stay in use"));
  }
  absl::MutexLock lock(&state_->mu);
  state_->material = *std::move(material);
  ++state_->generation;
  return absl::OkStatus();
}

std::string PeerCommonName(const grpc::AuthContext& auth_context) {
  if (!auth_context.IsPeerAuthenticated()) return "";
  const std::vector<grpc::string_ref> names =
      auth_context.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty()) return "";
  return std::string(names.front().data(), names.front().size());
}

std::string PeerCommonName(const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth_context =
      context.auth_context();
  return auth_context == nullptr ? "" : PeerCommonName(*auth_context);
}

}  // namespace remex::auth
