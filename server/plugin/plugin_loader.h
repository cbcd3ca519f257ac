// Plugins: shared libraries built against remex/plugin.h, loaded at start.
// The one place where the plugin API meets the executor's FunctionSpec and
// TaskContext.
#ifndef REMEX_SERVER_PLUGIN_PLUGIN_LOADER_H_
#define REMEX_SERVER_PLUGIN_PLUGIN_LOADER_H_

#include <string>

#include "absl/status/status.h"
#include "server/executor/function_registry.h"

namespace remex::plugin {

// Loads the shared library at `path` (made absolute against the working
// directory; never searched for in the library path), checks that it was
// built against this server's plugin API version, and registers its
// functions in `registry`. The library stays loaded until the process exits:
// the registered functions run its code.
//
// Errors (FAILED_PRECONDITION, or the registry's own) start with
// "plugin PATH: " and say what is wrong: no such file, not loadable (with
// dlerror's reason), not a remex plugin (missing entry point), another API
// version, a function name that is taken, or a failed registration.
absl::Status LoadPlugin(const std::string& path,
                        executor::FunctionRegistry& registry);

}  // namespace remex::plugin

#endif  // REMEX_SERVER_PLUGIN_PLUGIN_LOADER_H_
