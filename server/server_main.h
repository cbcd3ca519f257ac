// The server's main, reusable by custom server binaries:
//
//   int main(int argc, char** argv) {
//     return remex::server::RunServer(argc, argv,
//         [](remex::executor::FunctionRegistry& registry) {
//           return registry.Register({.name = "hello", .body = ...});
//         });
//   }
#ifndef REMEX_SERVER_SERVER_MAIN_H_
#define REMEX_SERVER_SERVER_MAIN_H_

#include <functional>

#include "absl/status/status.h"
#include "server/config.h"
#include "server/executor/function_registry.h"

namespace remex::server {

// Adds functions beside the built-in ones.
using RegisterFunctions =
    std::function<absl::Status(executor::FunctionRegistry& registry)>;

// Fills `registry` with every function the server offers: the built-in ones
// (the test functions when the config enables them) and
// `register_functions`' ones. The server and each of its process workers
// call this, so that both know the same functions.
absl::Status BuildFunctionRegistry(const ServerConfig& config,
                                   const RegisterFunctions& register_functions,
                                   executor::FunctionRegistry& registry);

// Parses flags, loads the config, registers the built-in functions (and
// `register_functions`' ones), serves until SIGTERM or SIGINT, drains, and
// returns the process exit code: 0 after a clean drain, 2 for bad flags or
// config, 1 if the server could not start.
int RunServer(int argc, char** argv,
              const RegisterFunctions& register_functions = nullptr);

}  // namespace remex::server

#endif  // REMEX_SERVER_SERVER_MAIN_H_
