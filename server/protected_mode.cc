#include "server/protected_mode.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace remex::server {
namespace {

constexpr int kGrpcPort = 50051;
constexpr int kMetricsPort = 9464;

absl::string_view HostOf(absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  absl::string_view host =
      colon == absl::string_view::npos ? listen : listen.substr(0, colon);
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  return host;
}

}  // namespace

bool IsLoopbackAddress(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:")) return true;
  const absl::string_view host = HostOf(listen);
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

std::string DefaultListen(bool open_to_network) {
  return absl::StrCat(open_to_network ? "0.0.0.0" : "127.0.0.1", ":",
                      kGrpcPort);
}

std::string DefaultMetricsListen(bool open_to_network) {
  return absl::StrCat(open_to_network ? "0.0.0.0" : "127.0.0.1", ":",
                      kMetricsPort);
}

absl::Status CheckProtectedMode(absl::string_view listen, bool authenticates,
                                bool insecure) {
  if (authenticates || insecure || IsLoopbackAddress(listen)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to serve ", listen,
      " to the network with no authentication: give --auth FILE or "
      "--tls-client-ca FILE, listen on 127.0.0.1, or pass --insecure to let "
      "anyone who reaches it run, read and delete tasks"));
}

std::string InsecureWarning(absl::string_view listen, bool authenticates) {
  if (authenticates || IsLoopbackAddress(listen)) return "";
  return absl::StrCat(
      "WARNING: --insecure: anyone who reaches ", listen,
      " can run functions and read, cancel and delete every task");
}

}  // namespace remex::server
