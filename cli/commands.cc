#include "cli/commands.h"

#include <google/protobuf/empty.pb.h>

#include <iostream>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "remex/future.h"
#include "remex/json.h"

namespace remex::cli {
namespace {

void Print(const google::protobuf::Message& message) {
  std::string json = ToJson(message, /*pretty=*/true);
  if (!absl::EndsWith(json, "\n")) json += '\n';
  std::cout << json;
}

template <class Message>
absl::StatusOr<int> PrintAnswer(const absl::StatusOr<Message>& answer) {
  if (!answer.ok()) return answer.status();
  Print(*answer);
  return kExitOk;
}

// Prints the task a wait ended with; kExitTaskNotSucceeded if it ended
// otherwise than SUCCEEDED.
absl::StatusOr<int> PrintWaited(const absl::StatusOr<v1::Task>& task) {
  if (!task.ok()) return task.status();
  Print(*task);
  const bool failed =
      IsTerminal(task->state()) && task->state() != v1::SUCCEEDED;
  return failed ? kExitTaskNotSucceeded : kExitOk;
}

SubmitOptions MakeSubmitOptions(const CommandLine& line) {
  SubmitOptions options;
  options.pool = line.String("pool");
  options.priority = line.Int("priority");
  options.queue_timeout = line.Duration("queue-timeout", absl::ZeroDuration());
  options.run_timeout = line.Duration("run-timeout", absl::ZeroDuration());
  options.max_attempts = line.Int("max-attempts");
  for (const std::string& label : line.All("label")) {
    std::pair<std::string, std::string> pair =
        absl::StrSplit(label, absl::MaxSplits('=', 1));
    options.labels[pair.first] = pair.second;
  }
  options.ttl = line.Duration("ttl", absl::ZeroDuration());
  options.input = line.String("input-file", line.String("input"));
  return options;
}

absl::StatusOr<int> RunSubmit(Client& client, const CommandLine& line) {
  const google::protobuf::Value args =
      line.Has("args") ? Json(line.String("args")) : google::protobuf::Value();
  const absl::StatusOr<Future> future =
      client.TrySubmit(line.positional()[0], args, MakeSubmitOptions(line));
  if (!future.ok()) return future.status();
  if (!line.Has("wait")) return PrintAnswer<v1::Task>(future->task());
  return PrintWaited(client.Await(future->id(), absl::InfiniteDuration()));
}

absl::StatusOr<int> RunAwait(Client& client, const CommandLine& line) {
  return PrintWaited(
      client.Await(line.positional()[0],
                   line.Duration("timeout", absl::InfiniteDuration())));
}

absl::StatusOr<int> RunGet(Client& client, const CommandLine& line) {
  return PrintAnswer(client.Get(line.positional()[0]));
}

absl::StatusOr<int> RunCancel(Client& client, const CommandLine& line) {
  return PrintAnswer(client.Cancel(line.positional()[0]));
}

absl::StatusOr<int> RunDelete(Client& client, const CommandLine& line) {
  const absl::Status status = client.Delete(line.positional()[0]);
  if (!status.ok()) return status;
  return PrintAnswer<google::protobuf::Empty>(google::protobuf::Empty());
}

absl::StatusOr<int> RunList(Client& client, const CommandLine& line) {
  v1::ListRequest request;
  request.set_state(line.State("state"));
  request.set_function(line.String("function"));
  request.set_pool(line.String("pool"));
  request.set_page_size(line.Int("page-size"));
  request.set_page_token(line.String("page-token"));
  return PrintAnswer(client.List(request));
}

absl::StatusOr<int> RunFunctions(Client& client, const CommandLine& line) {
  return PrintAnswer(client.ListFunctions());
}

}  // namespace

const std::vector<Command>& Commands() {
  static const auto* const commands = new std::vector<Command>{
      {"submit",
       {"FUNCTION"},
       {{"args", FlagKind::kJson, "JSON"},
        {"input", FlagKind::kString, "STR"},
        {"input-file", FlagKind::kFile, "PATH"},
        {"pool", FlagKind::kString, "P"},
        {"priority", FlagKind::kInt, "N"},
        {"queue-timeout", FlagKind::kDuration, "DUR"},
        {"run-timeout", FlagKind::kDuration, "DUR"},
        {"max-attempts", FlagKind::kInt, "N"},
        {"label", FlagKind::kKeyValue, "K=V"},
        {"ttl", FlagKind::kDuration, "DUR"},
        {"wait", FlagKind::kSwitch}},
       "  Submits a task and prints it (QUEUED or later).\n"
       "    --args JSON          arguments, any JSON value (default: none)\n"
       "    --input STR          raw input bytes\n"
       "    --input-file PATH    input bytes read from PATH (wins over "
       "--input)\n"
       "    --pool P             pool (default: the function's)\n"
       "    --priority N         higher runs first (default 0)\n"
       "    --queue-timeout DUR  longest wait before the task starts\n"
       "    --run-timeout DUR    longest run\n"
       "    --max-attempts N     runs allowed when a worker dies\n"
       "    --label K=V          a label; repeat for more\n"
       "    --ttl DUR            how long the server keeps the finished task\n"
       "    --wait               wait until the task ends; print it then\n",
       RunSubmit},
      {"await",
       {"ID"},
       {{"timeout", FlagKind::kDuration, "DUR"}},
       "  Waits until the task ends, or --timeout DUR passes, and prints it.\n",
       RunAwait},
      {"get", {"ID"}, {}, "  Prints the task.\n", RunGet},
      {"cancel",
       {"ID"},
       {},
       "  Cancels the task and prints it (a finished task stays as it is).\n",
       RunCancel},
      {"delete",
       {"ID"},
       {},
       "  Forgets the task (cancels it first if it runs).\n",
       RunDelete},
      {"list",
       {},
       {{"state", FlagKind::kState, "S"},
        {"function", FlagKind::kString, "F"},
        {"pool", FlagKind::kString, "P"},
        {"page-size", FlagKind::kInt, "N"},
        {"page-token", FlagKind::kString, "T"}},
       "  Lists tasks, oldest first, filtered by --state S (QUEUED, RUNNING,\n"
       "  SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, WORKER_LOST), --function "
       "F,\n"
       "  --pool P; --page-size N (default 100) and --page-token T page.\n",
       RunList},
      {"functions",
       {},
       {},
       "  Lists the functions and pools of the server.\n",
       RunFunctions},
      {"help", {}, {}, "  Prints this help.\n", nullptr},
  };
  return *commands;
}

const Command* FindCommand(absl::string_view name) {
  for (const Command& command : Commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

}  // namespace remex::cli
