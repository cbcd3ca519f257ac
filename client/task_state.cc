#include "client/task_state.h"

#include "absl/strings/str_cat.h"
#include "common/task_error.h"

namespace remex::client {
namespace {

// The code for a task that ended in `state` without an error code.
absl::StatusCode CodeForState(v1::State state) {
  switch (state) {
    case v1::CANCELLED:
      return absl::StatusCode::kCancelled;
    case v1::TIMED_OUT:
      return absl::StatusCode::kDeadlineExceeded;
    case v1::WORKER_LOST:
      return absl::StatusCode::kAborted;
    case v1::FAILED:
      return absl::StatusCode::kUnknown;
    default:
      return absl::StatusCode::kFailedPrecondition;
  }
}

}  // namespace

bool IsTerminal(v1::State state) {
  switch (state) {
    case v1::SUCCEEDED:
    case v1::FAILED:
    case v1::CANCELLED:
    case v1::TIMED_OUT:
    case v1::WORKER_LOST:
      return true;
    default:
      return false;
  }
}

absl::Status TaskStatus(const v1::Task& task) {
  if (task.state() == v1::SUCCEEDED) return absl::OkStatus();
  const absl::StatusCode code =
      task.error().code() != 0 ? common::CodeFromNumber(task.error().code())
                               : CodeForState(task.state());
  if (!task.error().message().empty()) {
    return absl::Status(code, task.error().message());
  }
  return absl::Status(
      code, absl::StrCat("task ended ", v1::State_Name(task.state())));
}

}  // namespace remex::client
