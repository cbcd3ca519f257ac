// Loopback TCP for tests: a free port on 127.0.0.1, for servers that cannot
// bind port 0 and say which port they took (PostgreSQL, Prometheus), and a
// raw connection to a server (for tests that hold connections open).
#ifndef REMEX_TESTS_TESTING_FREE_PORT_H_
#define REMEX_TESTS_TESTING_FREE_PORT_H_

#include <string>

#include "absl/status/statusor.h"

namespace remex::testing {

// Binds 127.0.0.1:0, reads the port and releases it: another process may
// take it before the caller's server binds it, so callers retry on
// "address in use".
absl::StatusOr<int> FreeLoopbackPort();

// A TCP connection (its fd, owned by the caller) to `address`
// ("127.0.0.1:PORT"); -1 on failure.
int ConnectLoopback(const std::string& address);

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_FREE_PORT_H_
