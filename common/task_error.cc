#include "common/task_error.h"

#include <string>

namespace remex::common {

void ToTaskError(absl::StatusCode code, absl::string_view message,
                 v1::TaskError* error) {
  if (code == absl::StatusCode::kOk) {
    error->Clear();
    return;
  }
  error->set_code(static_cast<int32_t>(code));
  error->set_message(std::string(message));
}

void ToTaskError(const absl::Status& status, v1::TaskError* error) {
  ToTaskError(status.code(), status.message(), error);
}

absl::Status FromTaskError(const v1::TaskError& error) {
  return absl::Status(CodeFromNumber(error.code()), error.message());
}

}  // namespace remex::common
