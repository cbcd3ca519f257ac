// A remex server with a function of its own.
//
// Build target `custom_server`; run it like remex-server (same flags), then:
//   remex submit word_count --args '{"text": "to be or not to be"}' --wait
//
// Functions get their JSON args and input bytes through a TaskContext, set a
// result (JSON) and/or output (bytes), and return a status: a non-OK status
// (or an exception) ends the task FAILED with that message. Long functions
// poll context.cancelled() so that Cancel and run_timeout stop them.
#include <sstream>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "server/executor/function_registry.h"
#include "server/server_main.h"

namespace {

using remex::executor::FunctionRegistry;
using remex::executor::Json;
using remex::executor::TaskContext;

// Rejected at submit time, so a bad call never reaches a worker.
absl::Status CheckWordCountArgs(const Json& args, const std::string& input) {
  const bool has_text = args.is_object() && args.contains("text");
  if (has_text && !args["text"].is_string()) {
    return absl::InvalidArgumentError("word_count: args.text must be a string");
  }
  if (!has_text && input.empty()) {
    return absl::InvalidArgumentError(
        "word_count: give args.text or input bytes");
  }
  return absl::OkStatus();
}

absl::Status WordCount(TaskContext& context) {
  const Json& args = context.args();
  const bool has_text = args.is_object() && args.contains("text");
  std::istringstream words(has_text ? args["text"].get<std::string>()
                                    : context.input());
  absl::flat_hash_map<std::string, int> counts;
  std::string word;
  while (words >> word) {
    if (context.cancelled()) return absl::CancelledError("cancelled");
    ++counts[word];
  }
  Json result = Json::object();
  for (const auto& [text, count] : counts) result[text] = count;
  context.set_result(std::move(result));
  return absl::OkStatus();
}

absl::Status RegisterMyFunctions(FunctionRegistry& registry) {
  return registry.Register({.name = "word_count",
                            .description = "{\"text\": S} or input bytes: "
                                           "result = count of each word",
                            .check_args = CheckWordCountArgs,
                            .body = WordCount});
}

}  // namespace

int main(int argc, char** argv) {
  return remex::server::RunServer(argc, argv, RegisterMyFunctions);
}
