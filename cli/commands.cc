#include "cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "remex/future.h"

namespace remex::cli {
namespace {

// The exit code of two outcomes together: 1, then 3, then 4, then 0.
int Worse(int a, int b) {
  for (const int code :
       {kExitRpcError, kExitTaskNotSucceeded, kExitStillRunning}) {
    if (a == code || b == code) return code;
  }
  return std::max(a, b);
}

// The exit code for a task that a wait returned.
int WaitedExitCode(const v1::Task& task) {
  if (!IsTerminal(task.state())) return kExitStillRunning;
  return task.state() == v1::SUCCEEDED ? kExitOk : kExitTaskNotSucceeded;
}

void PrintTasks(const std::vector<v1::Task>& tasks, bool list,
                OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      if (list || tasks.size() != 1) {
        std::cout << TasksJson(tasks, /*pretty=*/true) << "\n";
      } else {
        std::cout << MessageJson(tasks.front(), /*pretty=*/true) << "\n";
      }
      break;
    case OutputFormat::kTable:
      std::cout << TasksTable(tasks, absl::Now());
      break;
    case OutputFormat::kId:
      for (const v1::Task& task : tasks) std::cout << task.id() << "\n";
      break;
  }
  std::cout.flush();
}

// Calls `call(id)` for each id, printing the tasks it returns (all at the
// end, in the order of `ids`) and the errors as they come.
template <class Call>
int ForEachId(const std::vector<std::string>& ids, bool list,
              OutputFormat format, Call call) {
  int exit_code = kExitOk;
  std::vector<v1::Task> tasks;
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Task> task = call(id);
    if (!task.ok()) {
      exit_code = Worse(exit_code, ReportRpcError(task.status()));
      continue;
    }
    tasks.push_back(*std::move(task));
  }
  // A single id that failed prints nothing, so that stdout stays empty.
  if (list || !tasks.empty()) PrintTasks(tasks, list, format);
  return exit_code;
}

// Client::Await, but showing on stderr (a terminal) the state of the task
// and how long it has been waited for, in one line updated each second and
// erased at the end.
absl::StatusOr<v1::Task> AwaitShowingProgress(Client& client,
                                              const std::string& id,
                                              absl::Duration timeout) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  absl::StatusOr<v1::Task> task;
  for (;;) {
    const absl::Duration remaining =
        std::max(deadline - absl::Now(), absl::ZeroDuration());
    task = client.Await(id, std::min(remaining, absl::Seconds(1)));
    if (!task.ok() || IsTerminal(task->state()) || absl::Now() >= deadline) {
      break;
    }
    std::cerr << "\r\x1b[K"
              << "remex: " << id << " " << v1::State_Name(task->state())
              << " (attempt " << task->attempt() << "), waited "
              << ShortDuration(absl::Now() - start) << std::flush;
  }
  std::cerr << "\r\x1b[K" << std::flush;
  return task;
}

}  // namespace

int ReportRpcError(const absl::Status& status) {
  std::cerr << "remex: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return kExitRpcError;
}

absl::StatusOr<std::vector<std::string>> ExpandIds(
    const std::vector<std::string>& arguments, std::istream& input) {
  std::vector<std::string> ids;
  bool read_input = false;
  for (const std::string& argument : arguments) {
    if (argument != "-") {
      ids.push_back(argument);
      continue;
    }
    if (read_input) {
      return absl::InvalidArgumentError("'-' (ids on stdin) may come once");
    }
    read_input = true;
    std::string line;
    while (std::getline(input, line)) {
      const absl::string_view id = absl::StripAsciiWhitespace(line);
      if (!id.empty()) ids.emplace_back(id);
    }
  }
  return ids;
}

bool PrintsList(const std::vector<std::string>& arguments) {
  return arguments.size() != 1 || arguments.front() == "-";
}

int RunSubmit(Client& client, const SubmitCommand& command,
              OutputFormat format) {
  const absl::StatusOr<Future> future = client.TrySubmit(
      command.function, command.args.value_or(google::protobuf::Value()),
      command.options);
  if (!future.ok()) return ReportRpcError(future.status());
  if (!command.wait) {
    PrintTasks({future->task()}, /*list=*/false, format);
    return kExitOk;
  }
  // At once, so that an interrupted wait leaves the user the id.
  std::cerr << "remex: submitted " << future->id() << ", waiting for it to end"
            << std::endl;
  const absl::StatusOr<v1::Task> task =
      isatty(STDERR_FILENO)
          ? AwaitShowingProgress(client, future->id(), command.timeout)
          : client.Await(future->id(), command.timeout);
  if (!task.ok()) return ReportRpcError(task.status());
  PrintTasks({*task}, /*list=*/false, format);
  return WaitedExitCode(*task);
}

int RunGet(Client& client, const std::vector<std::string>& ids, bool list,
           OutputFormat format) {
  return ForEachId(ids, list, format,
                   [&](const std::string& id) { return client.Get(id); });
}

int RunCancel(Client& client, const std::vector<std::string>& ids, bool list,
              OutputFormat format) {
  return ForEachId(ids, list, format,
                   [&](const std::string& id) { return client.Cancel(id); });
}

int RunAwait(Client& client, const std::vector<std::string>& ids, bool list,
             absl::Duration timeout, OutputFormat format) {
  const absl::Time deadline = absl::Now() + timeout;
  int exit_code = kExitOk;
  const int rpc_exit_code =
      ForEachId(ids, list, format, [&](const std::string& id) {
        absl::StatusOr<v1::Task> task = client.Await(
            id, std::max(deadline - absl::Now(), absl::ZeroDuration()));
        if (task.ok()) exit_code = Worse(exit_code, WaitedExitCode(*task));
        return task;
      });
  return Worse(rpc_exit_code, exit_code);
}

int RunDelete(Client& client, const std::vector<std::string>& ids, bool list,
              OutputFormat format) {
  int exit_code = kExitOk;
  std::vector<std::string> deleted;
  for (const std::string& id : ids) {
    const absl::Status status = client.Delete(id);
    if (!status.ok()) {
      exit_code = Worse(exit_code, ReportRpcError(status));
      continue;
    }
    deleted.push_back(id);
  }
  if (!list && deleted.empty()) return exit_code;
  if (format == OutputFormat::kJson) {
    std::string json = "{\n  \"deleted\": [";
    for (size_t i = 0; i < deleted.size(); ++i) {
      absl::StrAppend(&json, i > 0 ? "," : "", "\n    ",
                      JsonString(deleted[i]));
    }
    absl::StrAppend(&json, deleted.empty() ? "]" : "\n  ]", "\n}\n");
    std::cout << json;
  } else {
    for (const std::string& id : deleted) std::cout << id << "\n";
  }
  std::cout.flush();
  return exit_code;
}

int RunList(Client& client, const ListCommand& command, OutputFormat format) {
  v1::ListRequest request = command.request;
  v1::ListResponse all;
  for (;;) {
    absl::StatusOr<v1::ListResponse> page = client.List(request);
    if (!page.ok()) return ReportRpcError(page.status());
    all.mutable_tasks()->MergeFrom(page->tasks());
    all.mutable_trimmed_task_ids()->MergeFrom(page->trimmed_task_ids());
    all.set_next_page_token(page->next_page_token());
    if (!command.all || page->next_page_token().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  if (format == OutputFormat::kJson) {
    // {"tasks": []} rather than {} when empty, so `jq '.tasks[]'` works.
    std::string json = MessageJson(all, /*pretty=*/true);
    if (all.tasks().empty()) {
      // Splice the other fields (a page token) in after "tasks".
      json = json == "{}" ? TasksJson({}, /*pretty=*/true)
                          : absl::StrCat("{\n  \"tasks\": [],", json.substr(1));
    }
    std::cout << json << "\n";
  } else {
    PrintTasks({all.tasks().begin(), all.tasks().end()}, /*list=*/true, format);
    if (!all.next_page_token().empty()) {
      std::cerr << "remex: more tasks: --page-token " << all.next_page_token()
                << " (or --all)\n";
    }
  }
  std::cout.flush();
  return kExitOk;
}

int RunFunctions(Client& client, OutputFormat format) {
  const absl::StatusOr<v1::ListFunctionsResponse> functions =
      client.ListFunctions();
  if (!functions.ok()) return ReportRpcError(functions.status());
  switch (format) {
    case OutputFormat::kJson:
      std::cout << MessageJson(*functions, /*pretty=*/true) << "\n";
      break;
    case OutputFormat::kTable:
      std::cout << FunctionsTable(*functions);
      break;
    case OutputFormat::kId:
      for (const v1::FunctionInfo& function : functions->functions()) {
        std::cout << function.name() << "\n";
      }
      break;
  }
  std::cout.flush();
  return kExitOk;
}

}  // namespace remex::cli
