#include "server/executor/task_observer.h"

namespace remex::executor {

absl::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kQueueFull:
      return "queue_full";
    case RejectReason::kDraining:
      return "draining";
    case RejectReason::kInvalid:
      return "invalid";
    case RejectReason::kNotFound:
      return "not_found";
  }
  return "invalid";
}

RejectReason RejectReasonOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kResourceExhausted:
      return RejectReason::kQueueFull;
    // FAILED_PRECONDITION: the pool was shut down, which only happens as the
    // server stops.
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kFailedPrecondition:
      return RejectReason::kDraining;
    case absl::StatusCode::kNotFound:
      return RejectReason::kNotFound;
    default:
      return RejectReason::kInvalid;
  }
}

}  // namespace remex::executor
