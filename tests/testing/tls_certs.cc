#include "tests/testing/tls_certs.h"

#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/testing/subprocess.h"

namespace remex::testing {
namespace {

constexpr absl::Duration kOpensslTimeout = absl::Seconds(30);

// Runs `openssl ARGS...`; an error with its stderr unless it exits 0.
absl::Status Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/env", "openssl"});
  absl::StatusOr<ProcessResult> result = RunProcess(args, kOpensslTimeout);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        "openssl ", args[2], " exited ", result->exit_code, ": ", result->err));
  }
  return absl::OkStatus();
}

// Reads the PEM texts of `files`.
absl::Status FillPem(CertFiles& files) {
  absl::StatusOr<std::string> cert = ReadFileText(files.cert);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFileText(files.key);
  if (!key.ok()) return key.status();
  files.cert_pem = *std::move(cert);
  files.key_pem = *std::move(key);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFileText(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(file), {});
}

absl::StatusOr<TestCa> TestCa::Create(const std::filesystem::path& dir,
                                      absl::string_view name) {
  const std::string prefix = absl::StrReplaceAll(name, {{" ", "_"}});
  CertFiles ca{.cert = (dir / (prefix + "-ca.pem")).string(),
               .key = (dir / (prefix + "-ca.key")).string()};
  absl::Status made = Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes",
                               "-keyout", ca.key, "-out", ca.cert, "-days", "2",
                               "-subj", absl::StrCat("/CN=", name), "-addext",
                               "basicConstraints=critical,CA:TRUE", "-addext",
                               "keyUsage=critical,keyCertSign,cRLSign"});
  if (!made.ok()) return made;
  if (absl::Status read = FillPem(ca); !read.ok()) return read;
  return TestCa(dir, prefix, std::move(ca));
}

absl::StatusOr<CertFiles> TestCa::MakeServerCert(absl::string_view name) {
  return Sign(name,
              "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage=serverAuth\n");
}

absl::StatusOr<CertFiles> TestCa::MakeClientCert(
    absl::string_view common_name) {
  return Sign(common_name, "extendedKeyUsage=clientAuth\n");
}

absl::StatusOr<CertFiles> TestCa::Sign(absl::string_view common_name,
                                       absl::string_view extensions) {
  const std::string base =
      (dir_ / absl::StrCat(prefix_, "-", issued_++)).string();
  CertFiles files{.cert = base + ".pem", .key = base + ".key"};
  const std::string request = base + ".csr";
  const std::string extfile = base + ".ext";
  std::ofstream(extfile) << extensions;
  absl::Status made =
      Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", files.key,
               "-out", request, "-subj", absl::StrCat("/CN=", common_name)});
  if (!made.ok()) return made;
  made = Openssl({"x509", "-req", "-in", request, "-CA", ca_.cert, "-CAkey",
                  ca_.key, "-CAcreateserial", "-CAserial",
                  (dir_ / (prefix_ + "-ca.srl")).string(), "-out", files.cert,
                  "-days", "2", "-extfile", extfile});
  if (!made.ok()) return made;
  if (absl::Status read = FillPem(files); !read.ok()) return read;
  return files;
}

}  // namespace remex::testing
