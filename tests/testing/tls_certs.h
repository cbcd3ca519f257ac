// Test certificates made with the `openssl` command line tool at test time:
// a CA, server certificates for 127.0.0.1 and localhost, and client
// certificates with given common names.
#ifndef REMEX_TESTS_TESTING_TLS_CERTS_H_
#define REMEX_TESTS_TESTING_TLS_CERTS_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace remex::testing {

// A certificate and its key, as files and as PEM text.
struct CertFiles {
  std::string cert;
  std::string key;
  std::string cert_pem;
  std::string key_pem;
};

// A CA (EC P-256, valid for two days) whose files live in `dir`, and the
// certificates it signs there. Not thread-safe; the directory must outlive
// it (e.g. a TempDir).
class TestCa {
 public:
  // Makes the CA "CN=`name`" in `dir` (files `name`-ca.pem and
  // `name`-ca.key, spaces replaced).
  static absl::StatusOr<TestCa> Create(
      const std::filesystem::path& dir,
      absl::string_view name = "remex test CA");

  // A server certificate for IP:127.0.0.1 and DNS:localhost, CN `name`.
  absl::StatusOr<CertFiles> MakeServerCert(absl::string_view name = "server");
  // A client certificate with subject CN `common_name`.
  absl::StatusOr<CertFiles> MakeClientCert(absl::string_view common_name);

  // The CA's certificate: its file and PEM.
  const std::string& ca_file() const { return ca_.cert; }
  const std::string& ca_pem() const { return ca_.cert_pem; }

 private:
  TestCa(std::filesystem::path dir, std::string prefix, CertFiles ca)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), ca_(std::move(ca)) {}

  // Signs a new key for `common_name` with `extensions` (openssl x509
  // -extfile lines).
  absl::StatusOr<CertFiles> Sign(absl::string_view common_name,
                                 absl::string_view extensions);

  std::filesystem::path dir_;
  std::string prefix_;
  CertFiles ca_;
  int issued_ = 0;
};

// The contents of a file; an error if it cannot be read.
absl::StatusOr<std::string> ReadFileText(const std::string& path);

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_TLS_CERTS_H_
