// remex/errors.h — the exceptions the remex SDK throws.
//
// RpcError: a call to the server failed (NOT_FOUND, INVALID_ARGUMENT,
// UNAVAILABLE, ...). TaskError: the call worked, but the task did not succeed.
#ifndef REMEX_ERRORS_H_
#define REMEX_ERRORS_H_

#include <stdexcept>
#include <string>

#include "absl/status/status.h"
#include "remex/v1/executor.pb.h"

namespace remex {

// A failed RPC. what() is "CODE_NAME: message". Immutable; thread-safe.
class RpcError : public std::runtime_error {
 public:
  // REQUIRES: !status.ok().
  explicit RpcError(const absl::Status& status);

  absl::StatusCode code() const { return status_.code(); }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// A task that ended FAILED, CANCELLED, TIMED_OUT or WORKER_LOST.
// what() is "task ID ended STATE: message". Immutable; thread-safe.
class TaskError : public std::runtime_error {
 public:
  // REQUIRES: `task` is terminal and not SUCCEEDED.
  explicit TaskError(const v1::Task& task);

  // The code of Task.error, or one that fits the state if that is unset
  // (CANCELLED, DEADLINE_EXCEEDED for TIMED_OUT, ABORTED for WORKER_LOST).
  absl::StatusCode code() const { return code_; }
  v1::State state() const { return state_; }
  const std::string& task_id() const { return task_id_; }

 private:
  absl::StatusCode code_;
  v1::State state_;
  std::string task_id_;
};

}  // namespace remex

#endif  // REMEX_ERRORS_H_
