// The functions a server offers, from every source, built in one place: the
// server and each of its process-pool workers (which start from the same
// flags and config) call BuildFunctionRegistry, and so offer the same
// functions.
#ifndef REMEX_SERVER_REGISTRY_BUILDER_H_
#define REMEX_SERVER_REGISTRY_BUILDER_H_

#include <functional>

#include "absl/status/status.h"
#include "server/config.h"
#include "server/executor/function_registry.h"

namespace remex::server {

// Adds functions beside the built-in ones (a custom server's).
using RegisterFunctions =
    std::function<absl::Status(executor::FunctionRegistry& registry)>;

// Registers into the empty `registry`, in this order: the built-in functions
// (with the test functions if config.enable_test_functions), those of
// `register_functions` (may be null), those of every plugin in
// config.plugins, and the command functions in config.command_functions.
// Then checks that every function's default pool is one of the config's
// pools. The first problem is returned, naming the plugin or function:
// a plugin that cannot be loaded, a name registered twice, an unknown pool.
absl::Status BuildFunctionRegistry(const ServerConfig& config,
                                   const RegisterFunctions& register_functions,
                                   executor::FunctionRegistry& registry);

}  // namespace remex::server

#endif  // REMEX_SERVER_REGISTRY_BUILDER_H_
