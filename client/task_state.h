// Facts about remex.v1.State shared by the client side.
#ifndef REMEX_CLIENT_TASK_STATE_H_
#define REMEX_CLIENT_TASK_STATE_H_

#include "absl/status/status.h"
#include "remex/v1/executor.pb.h"

namespace remex::client {

// True for SUCCEEDED, FAILED, CANCELLED, TIMED_OUT and WORKER_LOST.
bool IsTerminal(v1::State state);

// OK for a SUCCEEDED task. For a task that ended otherwise (or is not
// terminal), its error: the code of Task.error, or when that is unset a code
// that fits the state, and Task.error.message (or, if empty, the state name).
absl::Status TaskStatus(const v1::Task& task);

}  // namespace remex::client

#endif  // REMEX_CLIENT_TASK_STATE_H_
