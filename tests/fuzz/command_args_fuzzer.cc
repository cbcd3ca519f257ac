// Command functions' placeholders (server/functions/command_function.h):
// any argv template from a config is a function or an INVALID_ARGUMENT
// naming the function, and any JSON args against a function's template are
// accepted or INVALID_ARGUMENT with a short, valid UTF-8 message; never a
// crash. The body (which runs the command) is not called.
//
// Input: the template's elements after command[0] (/bin/true), separated
// by '\n', up to the first NUL byte; then the task's args as JSON text. A
// first byte 'A' sets allow_option_values.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/executor/function_registry.h"
#include "server/functions/command_function.h"
#include "tests/fuzz/fuzz_executor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  remex::functions::CommandFunctionConfig config;
  config.name = "fuzzed";
  config.allow_option_values = absl::ConsumePrefix(&input, "A");
  const size_t nul = input.find('\0');
  const absl::string_view command = input.substr(0, nul);
  const absl::string_view args_text =
      nul == absl::string_view::npos ? "" : input.substr(nul + 1);
  config.command.push_back("/bin/true");
  if (!command.empty()) {
    for (absl::string_view element : absl::StrSplit(command, '\n')) {
      config.command.emplace_back(element);
    }
  }
  absl::StatusOr<remex::executor::FunctionSpec> function =
      remex::functions::MakeCommandFunction(config);
  if (!function.ok()) {
    if (function.status().code() != absl::StatusCode::kInvalidArgument ||
        !absl::StrContains(function.status().message(), "fuzzed")) {
      __builtin_trap();
    }
    return 0;
  }
  const remex::executor::Json args = remex::executor::Json::parse(
      args_text, nullptr, /*allow_exceptions=*/false);
  if (args.is_discarded()) return 0;
  const absl::Status checked = function->check_args(args, "");
  if (!checked.ok()) {
    if (checked.code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    remex::fuzz::CheckErrorMessage(checked);
  }
  return 0;
}
