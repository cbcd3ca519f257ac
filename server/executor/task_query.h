// Who asks and what they ask for: the caller of a task method, and List's
// query and pages. Shared by the executor and the stores.
#ifndef REMEX_SERVER_EXECUTOR_TASK_QUERY_H_
#define REMEX_SERVER_EXECUTOR_TASK_QUERY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/executor/task.h"

namespace remex::executor {

// Who asks. A task belongs to the principal that submitted it
// (TaskSpec::owner): a caller that does not see all tasks finds only its
// own, and any other task is NOT_FOUND to it, as if it did not exist. The
// default caller (a server without authentication) sees every task.
struct Caller {
  // The owner of what it submits. Not owned: must outlive the call.
  absl::string_view name;
  bool sees_all_tasks = true;
  // Tasks it may have accepted and not yet terminal; 0: no limit.
  int64_t max_active_tasks = 0;

  bool Sees(const TaskSpec& spec) const {
    return sees_all_tasks || spec.owner == name;
  }
};

struct ListQuery {
  std::optional<TaskState> state;
  std::string function;  // empty: any
  std::string pool;      // empty: any
  // Clamped to [1, kMaxPageSize]; 0 means kDefaultPageSize.
  int page_size = 0;
  // From ListPage::next_page_token (made by ListPageToken); empty: from the
  // first task. Opaque to callers; any other string is INVALID_ARGUMENT.
  std::string page_token;

  static constexpr int kDefaultPageSize = 100;
  static constexpr int kMaxPageSize = 1000;
};

struct ListPage {
  std::vector<TaskSnapshot> tasks;  // oldest first
  // Empty: no more. A page can hold fewer than page_size tasks (even none)
  // while more remain: a filter that matches few tasks gives a short page
  // rather than a walk of the whole table (see TaskTable::FirstMatchesAfter).
  std::string next_page_token;
};

// The page token that resumes a List after the task at `list_position`
// (TaskSnapshot::list_position): the one way tokens are made, by
// Executor::List and by whoever cuts a page shorter (the RPC front end's
// byte bound). Short ("p" and the number) and URL-safe.
std::string ListPageToken(uint64_t list_position);

// The list position a token made by ListPageToken resumes after, or nullopt
// if ListPageToken makes no such string.
std::optional<uint64_t> ParseListPageToken(absl::string_view token);

// Whose tasks a caller sees, as a copy that outlives the call (Caller only
// views its name): what the store's asynchronous reads take.
struct Visibility {
  std::string owner;
  bool sees_all_tasks = true;

  static Visibility Of(const Caller& caller) {
    return {std::string(caller.name), caller.sees_all_tasks};
  }
  bool Sees(const TaskSpec& spec) const {
    return sees_all_tasks || spec.owner == owner;
  }
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TASK_QUERY_H_
