// The one place where a task's error (an absl::Status: a code and a message)
// and remex.v1.TaskError are converted, for the server and for clients.
#ifndef REMEX_COMMON_TASK_ERROR_H_
#define REMEX_COMMON_TASK_ERROR_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/status_code.h"
#include "remex/v1/executor.pb.h"

namespace remex::common {

// Writes `code` and `message` into `error`; OK leaves `error` empty.
void ToTaskError(absl::StatusCode code, absl::string_view message,
                 v1::TaskError* error);
void ToTaskError(const absl::Status& status, v1::TaskError* error);

// An empty error (code 0) is OK.
absl::Status FromTaskError(const v1::TaskError& error);

}  // namespace remex::common

#endif  // REMEX_COMMON_TASK_ERROR_H_
