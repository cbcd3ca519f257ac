#include "server/plugin/plugin_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "remex/plugin.h"

namespace remex::plugin {
namespace {

// A plugin's view of a running task, over the executor's TaskContext.
//
// Not thread-safe (as TaskContext); lives on the worker's stack for one call.
class PluginContext final : public plugin::Context {
 public:
  explicit PluginContext(executor::TaskContext& context) : context_(context) {}

  const std::string& task_id() const override { return context_.task_id(); }
  const plugin::Json& args() const override { return context_.args(); }
  const std::string& input() const override { return context_.input(); }
  bool cancelled() const override { return context_.cancelled(); }
  bool WaitForCancellation(absl::Duration timeout) const override {
    return context_.cancellation().WaitFor(timeout);
  }
  void set_result(plugin::Json result) override {
    context_.set_result(std::move(result));
  }
  void set_output(std::string output) override {
    context_.set_output(std::move(output));
  }

 private:
  executor::TaskContext& context_;
};

// Turns a plugin's FunctionDefs into FunctionSpecs in the registry, and
// remembers the first failure whether or not the plugin passes it on.
//
// Not thread-safe; lives for one registration call.
class PluginRegistrar final : public plugin::Registrar {
 public:
  explicit PluginRegistrar(executor::FunctionRegistry& registry)
      : registry_(registry) {}

  absl::Status Register(plugin::FunctionDef function) override {
    executor::ArgsChecker check_args;
    if (function.check_args) {
      // Whatever code the plugin picks, bad args are INVALID_ARGUMENT.
      check_args = [plugin_check = std::move(function.check_args)](
                       const executor::Json& args, const std::string& input) {
        absl::Status status = plugin_check(args, input);
        if (status.ok()) return status;
        return absl::InvalidArgumentError(status.message());
      };
    }
    executor::FunctionBody body;
    if (function.body) {
      body = [plugin_body =
                  std::move(function.body)](executor::TaskContext& context) {
        PluginContext plugin_context(context);
        return plugin_body(plugin_context);
      };
    }
    absl::Status status =
        registry_.Register({.name = std::move(function.name),
                            .description = std::move(function.description),
                            .default_pool = std::move(function.default_pool),
                            .run_timeout = function.run_timeout,
                            .check_args = std::move(check_args),
                            .body = std::move(body)});
    if (first_error_.ok()) first_error_ = status;
    return status;
  }

  const absl::Status& first_error() const { return first_error_; }

 private:
  executor::FunctionRegistry& registry_;
  absl::Status first_error_;
};

absl::Status PluginError(const std::string& path, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("plugin ", path, ": ", what));
}

// The symbol `name` of `library`, or null.
void* FindSymbol(void* library, const char* name) {
  dlerror();
  return dlsym(library, name);
}

}  // namespace

absl::Status LoadPlugin(const std::string& path,
                        executor::FunctionRegistry& registry) {
  std::error_code error;
  const std::string absolute = std::filesystem::absolute(path, error).string();
  if (error) return PluginError(path, error.message());
  if (!std::filesystem::is_regular_file(absolute, error)) {
    return PluginError(absolute, "no such file");
  }
  // RTLD_LOCAL: one plugin's symbols never satisfy or clash with another's.
  // The handle is never closed (see the header).
  void* library = dlopen(absolute.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    return PluginError(absolute, absl::StrCat("cannot load: ", dlerror()));
  }
  auto* api_version = reinterpret_cast<plugin::ApiVersionFunction*>(
      FindSymbol(library, plugin::kApiVersionSymbol));
  auto* register_functions = reinterpret_cast<plugin::RegisterFunction*>(
      FindSymbol(library, plugin::kRegisterSymbol));
  if (api_version == nullptr || register_functions == nullptr) {
    return PluginError(
        absolute,
        absl::StrCat("not a remex plugin: it does not export ",
                     api_version == nullptr ? plugin::kApiVersionSymbol
                                            : plugin::kRegisterSymbol,
                     " (define its entry points with REMEX_PLUGIN)"));
  }
  if (const int version = api_version(); version != plugin::kApiVersion) {
    return PluginError(
        absolute,
        absl::StrCat("built against plugin API version ", version,
                     ", but this server has version ", plugin::kApiVersion,
                     "; rebuild it with this server's remex/plugin.h"));
  }
  PluginRegistrar registrar(registry);
  absl::Status returned;
  register_functions(&registrar, &returned);
  const absl::Status& failure =
      registrar.first_error().ok() ? returned : registrar.first_error();
  if (!failure.ok()) return PluginError(absolute, failure.message());
  return absl::OkStatus();
}

}  // namespace remex::plugin
