// An example remex plugin with two functions:
//   reverse    {"text": S}  result = S with its characters in reverse order
//   countdown  {"ms": N}    waits N ms, stopping early when cancelled;
//                           result = {"waited_ms": N}
//
// Build target `remex_example_plugin`, then:
//   remex-server --plugin build/examples/plugin/libremex_example_plugin.so
//   remex submit reverse --args '{"text": "stressed"}' --wait
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "remex/plugin.h"

namespace {

using remex::plugin::Context;
using remex::plugin::Json;

constexpr int64_t kMaxCountdownMs = 24 * 3600 * 1000;

// The code points of valid UTF-8 `text` (the server only hands over valid
// UTF-8 strings), each as its byte sequence.
std::vector<std::string> Characters(const std::string& text) {
  std::vector<std::string> characters;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead < 0x80   ? 1
                          : lead < 0xE0 ? 2
                          : lead < 0xF0 ? 3
                                        : 4;
    characters.push_back(text.substr(i, length));
    i += length;
  }
  return characters;
}

absl::Status CheckReverseArgs(const Json& args, const std::string&) {
  if (!args.is_object() || !args.contains("text") ||
      !args["text"].is_string()) {
    return absl::InvalidArgumentError(
        "reverse: args.text is required (a string)");
  }
  return absl::OkStatus();
}

absl::Status Reverse(Context& context) {
  const std::vector<std::string> characters =
      Characters(context.args()["text"].get<std::string>());
  std::string reversed;
  for (auto it = characters.rbegin(); it != characters.rend(); ++it) {
    reversed += *it;
  }
  context.set_result(reversed);
  return absl::OkStatus();
}

absl::Status CheckCountdownArgs(const Json& args, const std::string&) {
  if (!args.is_object() || !args.contains("ms") ||
      !args["ms"].is_number_integer() || args["ms"].get<int64_t>() < 0 ||
      args["ms"].get<int64_t>() > kMaxCountdownMs) {
    return absl::InvalidArgumentError(
        "countdown: args.ms is required (an integer from 0 to 86400000)");
  }
  return absl::OkStatus();
}

absl::Status Countdown(Context& context) {
  const int64_t ms = context.args()["ms"].get<int64_t>();
  // Waits on the cancellation, not in a sleep: a cancel or a run_timeout
  // ends the wait at once.
  if (context.WaitForCancellation(absl::Milliseconds(ms))) {
    return absl::CancelledError("countdown: cancelled");
  }
  context.set_result(Json{{"waited_ms", ms}});
  return absl::OkStatus();
}

absl::Status RegisterFunctions(remex::plugin::Registrar& registrar) {
  absl::Status status = registrar.Register(
      {.name = "reverse",
       .description = "{\"text\": S}: result = S with its characters in "
                      "reverse order (example plugin)",
       .check_args = CheckReverseArgs,
       .body = Reverse});
  if (!status.ok()) return status;
  return registrar.Register(
      {.name = "countdown",
       .description = "{\"ms\": N}: waits N ms, stops early when cancelled "
                      "(example plugin)",
       .check_args = CheckCountdownArgs,
       .body = Countdown});
}

}  // namespace

REMEX_PLUGIN(RegisterFunctions);
