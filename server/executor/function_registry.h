// Registered functions: what a task runs.
#ifndef REMEX_SERVER_EXECUTOR_FUNCTION_REGISTRY_H_
#define REMEX_SERVER_EXECUTOR_FUNCTION_REGISTRY_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/executor/cancellation.h"
#include "server/executor/task.h"

namespace remex::executor {

// What a running function sees: its arguments, its input bytes, its
// cancellation token, and where to put its result.
//
// Not thread-safe: owned by the worker running the function and valid only
// during the call.
class TaskContext {
 public:
  TaskContext(const std::string& task_id, const TaskSpec& spec,
              const CancellationToken& cancellation)
      : task_id_(task_id), spec_(spec), cancellation_(cancellation) {}

  const std::string& task_id() const { return task_id_; }
  const Json& args() const { return spec_.args; }
  const std::string& input() const { return spec_.input; }

  // Set when the task is cancelled, times out or the server shuts down.
  // Long-running functions poll this or wait on it and return early.
  const CancellationToken& cancellation() const { return cancellation_; }
  bool cancelled() const { return cancellation_.cancelled(); }

  void set_result(Json result) { result_ = std::move(result); }
  void set_output(std::string output) { output_ = std::move(output); }
  Json& mutable_result() { return result_; }
  std::string& mutable_output() { return output_; }

 private:
  const std::string& task_id_;
  const TaskSpec& spec_;
  const CancellationToken& cancellation_;
  Json result_;
  std::string output_;
};

// Checks a task's args (and input) before it is accepted. A non-OK status is
// returned to the caller as INVALID_ARGUMENT; its message should name the
// field that is wrong and what was expected. Runs on the thread that submits
// (a gRPC poller): it must be quick and must not block.
using ArgsChecker =
    std::function<absl::Status(const Json& args, const std::string& input)>;

// The body of a function. Returning a non-OK status ends the task FAILED
// with that code and message; so does throwing (code UNKNOWN).
using FunctionBody = std::function<absl::Status(TaskContext& context)>;

struct FunctionSpec {
  std::string name;
  std::string description;
  // Empty: the server's default pool.
  std::string default_pool;
  // The run_timeout of tasks submitted without one; infinite: none.
  absl::Duration run_timeout = absl::InfiniteDuration();
  // Null: any args accepted.
  ArgsChecker check_args;
  FunctionBody body;
};

// Maps function names to their specs.
//
// Thread-compatible: register everything before the registry is handed to an
// Executor; after that it is only read, from any thread.
class FunctionRegistry {
 public:
  // INVALID_ARGUMENT for an empty name or a null body; ALREADY_EXISTS for a
  // name registered before.
  absl::Status Register(FunctionSpec spec);

  // Null if there is no such function.
  const FunctionSpec* Find(absl::string_view name) const;

  // All functions, sorted by name.
  std::vector<const FunctionSpec*> List() const;

 private:
  std::map<std::string, FunctionSpec, std::less<>> functions_;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_FUNCTION_REGISTRY_H_
