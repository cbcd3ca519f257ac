// The built-in functions of design.md: echo, sleep, fail, sha256, primes,
// spin, and (only when asked for) the test functions crash and ignore_cancel.
#ifndef REMEX_SERVER_FUNCTIONS_BUILTIN_FUNCTIONS_H_
#define REMEX_SERVER_FUNCTIONS_BUILTIN_FUNCTIONS_H_

#include "absl/status/status.h"
#include "server/executor/function_registry.h"

namespace remex::functions {

struct BuiltinOptions {
  // Registers `crash`, which kills the process running it, and
  // `ignore_cancel`, which keeps its worker busy after a cancel. For tests
  // only.
  bool enable_test_functions = false;
};

absl::Status RegisterBuiltinFunctions(const BuiltinOptions& options,
                                      executor::FunctionRegistry& registry);

}  // namespace remex::functions

#endif  // REMEX_SERVER_FUNCTIONS_BUILTIN_FUNCTIONS_H_
