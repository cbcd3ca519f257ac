#include "remex/errors.h"

#include "absl/strings/str_cat.h"
#include "client/task_state.h"

namespace remex {
namespace {

std::string RpcErrorText(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      status.message());
}

std::string TaskErrorText(const v1::Task& task) {
  return absl::StrCat("task ", task.id(), " ended ",
                      v1::State_Name(task.state()), ": ",
                      client::TaskStatus(task).message());
}

}  // namespace

RpcError::RpcError(const absl::Status& status)
    : std::runtime_error(RpcErrorText(status)), status_(status) {}

TaskError::TaskError(const v1::Task& task)
    : std::runtime_error(TaskErrorText(task)),
      code_(client::TaskStatus(task).code()),
      state_(task.state()),
      task_id_(task.id()) {}

}  // namespace remex
