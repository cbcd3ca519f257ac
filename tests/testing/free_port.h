// A free TCP port on 127.0.0.1, for servers that cannot bind port 0 and say
// which port they took (PostgreSQL, Prometheus).
#ifndef REMEX_TESTS_TESTING_FREE_PORT_H_
#define REMEX_TESTS_TESTING_FREE_PORT_H_

#include "absl/status/statusor.h"

namespace remex::testing {

// Binds 127.0.0.1:0, reads the port and releases it: another process may
// take it before the caller's server binds it, so callers retry on
// "address in use".
absl::StatusOr<int> FreeLoopbackPort();

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_FREE_PORT_H_
