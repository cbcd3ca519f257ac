// remex/plugin.h — functions in a shared library that remex-server loads at
// start (`remex-server --plugin ./libmy_functions.so`, or the config's
// `plugins: [...]`).
//
// A plugin defines functions and one registration function, and names it
// with REMEX_PLUGIN:
//
//   #include "remex/plugin.h"
//
//   absl::Status Shout(remex::plugin::Context& context) {
//     std::string text = context.args()["text"].get<std::string>();
//     for (char& c : text) c = std::toupper(static_cast<unsigned char>(c));
//     context.set_result(text);
//     return absl::OkStatus();
//   }
//
//   absl::Status RegisterFunctions(remex::plugin::Registrar& registrar) {
//     return registrar.Register({.name = "shout",
//                                .description = "{\"text\": S}: S in capitals",
//                                .check_args = CheckHasText,
//                                .body = Shout});
//   }
//
//   REMEX_PLUGIN(RegisterFunctions);
//
// Build it as a shared library; with CMake, link `remex::plugin_api` (this
// header, Abseil's status and nlohmann_json). examples/plugin/ is a complete
// one.
//
// ABI: the API passes C++ objects (std::string, std::function, absl::Status,
// nlohmann::json) between the server and the plugin. Build the plugin with
// the same compiler, C++ standard library, Abseil and nlohmann_json as the
// server (on Debian 12: g++ 12, libstdc++, libabsl 20220623, nlohmann_json
// 3.11.2). There is no ABI stability across toolchains. What the server does
// check is kApiVersion: a plugin built against another version of this
// header is refused at start with a message saying so.
//
// Lifetime and threads: the server loads every plugin once at start, before
// it serves, and never unloads it. Bodies run on pool workers, many at once,
// so they must be thread-safe. Args checks run on the thread that accepts the
// Submit (a gRPC poller): they must be quick, thread-safe and never block.
// Functions on a process pool run in worker processes, each of which loads
// the plugin itself: keep no state between tasks that a task relies on.
// Exceptions thrown by a body or an args check are caught by the server (a
// body's end the task FAILED, a check's answer INVALID_ARGUMENT).
#ifndef REMEX_PLUGIN_H_
#define REMEX_PLUGIN_H_

#include <exception>
#include <functional>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace remex::plugin {

// The version of this API. Bumped whenever a type below changes; the server
// refuses a plugin whose version differs from its own.
inline constexpr int kApiVersion = 1;

// Args and results are JSON values. Integral numbers arrive as integers.
using Json = nlohmann::json;

// What a running function sees: its task's args and input bytes, whether it
// was cancelled, and where its result goes.
//
// Owned by the server; valid only during the body's call. Not thread-safe,
// except cancelled() and WaitForCancellation(), which any thread the body
// starts (and joins before returning) may call.
class Context {
 public:
  virtual ~Context() = default;

  // The server-made id of the task.
  virtual const std::string& task_id() const = 0;
  // The args of Submit (null when the caller gave none).
  virtual const Json& args() const = 0;
  // The input bytes of Submit.
  virtual const std::string& input() const = 0;

  // True once the task was cancelled, hit its run_timeout, or the server is
  // shutting down. The task has then already ended and whatever the body
  // returns is dropped: long bodies should check this and return early.
  virtual bool cancelled() const = 0;
  // Blocks until the task is cancelled or `timeout` passes; returns
  // cancelled(). Use it instead of sleeping.
  virtual bool WaitForCancellation(absl::Duration timeout) const = 0;

  // The task's result, any JSON value. Every string in it must be valid
  // UTF-8 (or the task ends FAILED): put raw bytes in the output instead.
  virtual void set_result(Json result) = 0;
  // The task's output bytes.
  virtual void set_output(std::string output) = 0;
};

// Checks a task's args (and input) when it is submitted. A non-OK status is
// answered to the caller as INVALID_ARGUMENT (whatever its code); its message
// should name the field that is wrong and what was expected.
using ArgsCheck =
    std::function<absl::Status(const Json& args, const std::string& input)>;

// Runs a task. OK: the task SUCCEEDED with what the body set on the context.
// Anything else ends the task FAILED with the status's code and message.
using Body = std::function<absl::Status(Context& context)>;

// One function a plugin offers.
struct FunctionDef {
  // Unique across the server: the built-in functions, every plugin and the
  // config's command functions share one namespace.
  std::string name;
  // Shown by ListFunctions; say what the args are and what it returns.
  std::string description;
  // The pool a task runs on when Submit names none; empty: the server's
  // default pool. The server refuses to start if the pool does not exist.
  std::string default_pool;
  // The run_timeout of tasks submitted without one; infinite: none.
  absl::Duration run_timeout = absl::InfiniteDuration();
  // Empty: any args are accepted.
  ArgsCheck check_args;
  // Required.
  Body body;
};

// Takes the plugin's functions. Owned by the server; valid only during the
// registration call.
class Registrar {
 public:
  virtual ~Registrar() = default;
  // INVALID_ARGUMENT for an empty name or body, ALREADY_EXISTS for a name
  // that is taken. The server refuses to start after any failed Register,
  // whether or not the plugin returns the failure.
  virtual absl::Status Register(FunctionDef function) = 0;
};

// What REMEX_PLUGIN exports. The server looks these up by name.
using ApiVersionFunction = int();
using RegisterFunction = void(Registrar* registrar, absl::Status* status);
inline constexpr char kApiVersionSymbol[] = "remex_plugin_api_version";
inline constexpr char kRegisterSymbol[] = "remex_plugin_register";

namespace internal {

// Runs the plugin's registration function; nothing it throws crosses into
// the server.
inline void CallRegister(absl::Status (*register_functions)(Registrar&),
                         Registrar* registrar, absl::Status* status) {
  try {
    *status = register_functions(*registrar);
  } catch (const std::exception& e) {
    *status = absl::InternalError(
        std::string("the registration function threw: ") + e.what());
  } catch (...) {
    *status = absl::InternalError("the registration function threw");
  }
}

}  // namespace internal
}  // namespace remex::plugin

// Exports the entry points of a plugin. Use it once, in one source file of
// the library, at global scope, with a function
// `absl::Status RegisterFunctions(remex::plugin::Registrar&)`.
#define REMEX_PLUGIN(register_functions)                                   \
  extern "C" __attribute__((visibility("default"))) int                    \
  remex_plugin_api_version() {                                             \
    return ::remex::plugin::kApiVersion;                                   \
  }                                                                        \
  extern "C" __attribute__((visibility("default"))) void                   \
  remex_plugin_register(::remex::plugin::Registrar* registrar,             \
                        ::absl::Status* status) {                          \
    ::remex::plugin::internal::CallRegister(register_functions, registrar, \
                                            status);                       \
  }                                                                        \
  static_assert(::std::is_same_v<decltype(remex_plugin_api_version),       \
                                 ::remex::plugin::ApiVersionFunction> &&   \
                ::std::is_same_v<decltype(remex_plugin_register),          \
                                 ::remex::plugin::RegisterFunction>)

#endif  // REMEX_PLUGIN_H_
