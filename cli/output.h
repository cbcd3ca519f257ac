// What the `remex` tool prints: tasks and lists as JSON, as a table or as
// ids (-o json|table|id), and the live table of `remex watch`.
#ifndef REMEX_CLI_OUTPUT_H_
#define REMEX_CLI_OUTPUT_H_

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "remex/v1/executor.pb.h"

namespace remex::cli {

enum class OutputFormat { kJson, kTable, kId };

// "table", "id"; anything else (the parser allows only "json" then) is JSON.
OutputFormat OutputFormatFromName(absl::string_view name);

// `message` as JSON: protobuf's JSON mapping (lowerCamelCase names, fields
// at their default left out, enums by name, well-known types in their JSON
// form), except that 64-bit integers within ±2^53 are numbers rather than
// strings, and map keys come sorted. Pretty: two-space indents; else one
// line.
std::string MessageJson(const google::protobuf::Message& message, bool pretty);

// `text` as a JSON string, quoted and escaped.
std::string JsonString(absl::string_view text);

// `tasks` as the JSON object {"tasks": [...]} (`[]` when empty).
std::string TasksJson(const std::vector<v1::Task>& tasks, bool pretty);

// `tasks` as an aligned table with a header line: ID, FUNCTION, POOL, STATE,
// ATTEMPT, AGE (since created, at `now`), RUN TIME, and ERROR (the error
// message) when a task has one.
std::string TasksTable(const std::vector<v1::Task>& tasks, absl::Time now);

// The functions and pools of a server as two tables.
std::string FunctionsTable(const v1::ListFunctionsResponse& functions);

// A short human duration: "850ms", "12.3s", "4m05s", "2h03m", "3d04h".
std::string ShortDuration(absl::Duration duration);

// "[#####.....]" of `width` cells, `done` of `total` filled.
std::string ProgressBar(size_t done, size_t total, size_t width);

}  // namespace remex::cli

#endif  // REMEX_CLI_OUTPUT_H_
