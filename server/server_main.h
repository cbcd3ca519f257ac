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

#include "server/registry_builder.h"

namespace remex::server {

// Parses flags, loads the config, registers the functions (see
// BuildFunctionRegistry: the built-in ones, `register_functions`' ones,
// plugins, command functions), serves until SIGTERM or SIGINT, drains, and
// returns the process exit code: 0 after a clean drain, 2 for bad flags or
// config, 1 if the server could not start (a function could not be
// registered, a plugin not loaded, the address not bound).
int RunServer(int argc, char** argv,
              const RegisterFunctions& register_functions = nullptr);

}  // namespace remex::server

#endif  // REMEX_SERVER_SERVER_MAIN_H_
