// Protected mode: a server that lets anyone in (neither an auth file nor
// client certificates) serves only loopback addresses unless it is told
// --insecure, as Redis does.
#ifndef REMEX_SERVER_PROTECTED_MODE_H_
#define REMEX_SERVER_PROTECTED_MODE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace remex::server {

// True for 127.0.0.0/8, ::1, "localhost" and unix: addresses (the host of
// HOST:PORT, brackets allowed).
bool IsLoopbackAddress(absl::string_view listen);

// Where the server listens when --listen and --metrics-listen are not
// given: all interfaces when callers must authenticate (or --insecure says
// so), else loopback only.
std::string DefaultListen(bool open_to_network);
std::string DefaultMetricsListen(bool open_to_network);

// FAILED_PRECONDITION, with the line the server exits with, when `listen`
// is not loopback and the server would let anyone in without `insecure`.
absl::Status CheckProtectedMode(absl::string_view listen, bool authenticates,
                                bool insecure);

// The warning a server that lets anyone in on a non-loopback address says
// once at start; empty when there is nothing to warn of.
std::string InsecureWarning(absl::string_view listen, bool authenticates);

}  // namespace remex::server

#endif  // REMEX_SERVER_PROTECTED_MODE_H_
