// The calls a future needs to follow one task, behind an interface so the
// transport (today unary RPCs, later a stream) can change without touching the
// SDK.
#ifndef REMEX_CLIENT_TASK_TRANSPORT_H_
#define REMEX_CLIENT_TASK_TRANSPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "remex/v1/executor.pb.h"

namespace remex::client {

// Implementations are thread-safe.
class TaskTransport {
 public:
  virtual ~TaskTransport() = default;

  // Returns the task once it is terminal, or as it stands when `timeout`
  // passes (absl::InfiniteDuration(): no limit; zero or less: at once).
  virtual absl::StatusOr<v1::Task> Await(const std::string& id,
                                         absl::Duration timeout) = 0;
  virtual absl::StatusOr<v1::Task> Get(const std::string& id) = 0;
  // Returns the task after the cancel took effect or was refused.
  virtual absl::StatusOr<v1::Task> Cancel(const std::string& id) = 0;
};

}  // namespace remex::client

#endif  // REMEX_CLIENT_TASK_TRANSPORT_H_
