#include "server/registry_builder.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "server/functions/builtin_functions.h"
#include "server/functions/command_function.h"
#include "server/plugin/plugin_loader.h"

namespace remex::server {
namespace {

absl::Status CheckDefaultPools(const ServerConfig& config,
                               const executor::FunctionRegistry& registry) {
  std::vector<std::string> pools;
  for (const executor::PoolConfig& pool : config.executor.pools) {
    pools.push_back(pool.name);
  }
  for (const executor::FunctionSpec* function : registry.List()) {
    const std::string& pool = function->default_pool;
    if (pool.empty() ||
        std::find(pools.begin(), pools.end(), pool) != pools.end()) {
      continue;
    }
    return absl::FailedPreconditionError(
        absl::StrCat("function '", function->name, "' runs on pool '", pool,
                     "', which the config does not define (pools: ",
                     absl::StrJoin(pools, ", "), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status BuildFunctionRegistry(const ServerConfig& config,
                                   const RegisterFunctions& register_functions,
                                   executor::FunctionRegistry& registry) {
  REMEX_RETURN_IF_ERROR(functions::RegisterBuiltinFunctions(
      {.enable_test_functions = config.enable_test_functions}, registry));
  if (register_functions) REMEX_RETURN_IF_ERROR(register_functions(registry));
  for (const std::string& path : config.plugins) {
    REMEX_RETURN_IF_ERROR(plugin::LoadPlugin(path, registry));
  }
  for (const functions::CommandFunctionConfig& command :
       config.command_functions) {
    REMEX_ASSIGN_OR_RETURN(executor::FunctionSpec function,
                           functions::MakeCommandFunction(command));
    REMEX_RETURN_IF_ERROR(registry.Register(std::move(function)));
  }
  return CheckDefaultPools(config, registry);
}

}  // namespace remex::server
