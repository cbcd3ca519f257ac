// The auth file (server/auth/principals.h) and what a call presents to it:
// any file is INVALID_ARGUMENT naming it or a principal set, and any
// authorization header or certificate CN against that set is a principal
// or UNAUTHENTICATED; never a crash or an escaped exception.
//
// Input: the auth file, then (after the first NUL byte, if any) the
// `authorization` metadata, a certificate CN and a function name, separated
// by NUL bytes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/auth/principals.h"

namespace {

using ::remex::auth::Authentication;
using ::remex::auth::Authenticator;

// Where each input is written for Authenticator::Create, which reads a
// file as the server does.
const std::string& AuthFilePath() {
  static const std::string* const kPath = new std::string(
      absl::StrCat("/tmp/remex-auth-fuzzer-", getpid(), ".yaml"));
  return *kPath;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<absl::string_view> parts =
      absl::StrSplit(input, absl::MaxSplits('\0', 3));
  const absl::string_view file = parts[0];
  const absl::string_view authorization = parts.size() > 1 ? parts[1] : "";
  const absl::string_view cn = parts.size() > 2 ? parts[2] : "";
  const std::string function(parts.size() > 3 ? parts[3] : "echo");

  {
    std::ofstream out(AuthFilePath(), std::ios::binary | std::ios::trunc);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  absl::StatusOr<std::unique_ptr<Authenticator>> authenticator =
      Authenticator::Create(AuthFilePath(), /*client_certificates=*/true);
  std::remove(AuthFilePath().c_str());
  if (!authenticator.ok()) {
    if (authenticator.status().code() != absl::StatusCode::kInvalidArgument ||
        !absl::StrContains(authenticator.status().message(), AuthFilePath())) {
      __builtin_trap();
    }
    return 0;
  }
  const Authentication who = (*authenticator)
                                 ->Authenticate({.authorization = authorization,
                                                 .certificate_cn = cn});
  if (who.principal == nullptr) {
    if (who.status.code() != absl::StatusCode::kUnauthenticated) {
      __builtin_trap();
    }
    return 0;
  }
  if (!who.status.ok()) __builtin_trap();
  const absl::Status may = who.principal->MaySubmit(function);
  if (!may.ok() && may.code() != absl::StatusCode::kPermissionDenied) {
    __builtin_trap();
  }
  return 0;
}
