// remex/task_result.h — what a task that SUCCEEDED produced.
#ifndef REMEX_TASK_RESULT_H_
#define REMEX_TASK_RESULT_H_

#include <google/protobuf/struct.pb.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "remex/v1/executor.pb.h"

namespace remex {

// A copy of a finished task's result and output. A value type: not
// synchronized, but independent copies may be used from different threads.
class TaskResult {
 public:
  explicit TaskResult(v1::Task task) : task_(std::move(task)) {}

  // The task's JSON-like result (Task.result).
  const google::protobuf::Value& value() const { return task_.result(); }
  // value() as compact JSON text ("null" if the task set none).
  std::string json() const;
  // The task's raw output bytes (Task.output).
  const std::string& output() const { return task_.output(); }
  // output() parsed as a protobuf message of type M.
  // Throws std::invalid_argument if the bytes do not parse.
  template <class M>
  M As() const {
    M message;
    if (!message.ParseFromString(output())) {
      throw std::invalid_argument("task " + task_.id() +
                                  " output is not a valid " +
                                  message.GetTypeName());
    }
    return message;
  }
  // The whole task, as it was when it finished.
  const v1::Task& task() const { return task_; }

 private:
  v1::Task task_;
};

}  // namespace remex

#endif  // REMEX_TASK_RESULT_H_
