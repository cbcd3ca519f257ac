// What the front end asks of the executor: the asynchronous task calls and
// the read-only facts ListFunctions shows. A seam, so that tests can answer
// the calls later, on threads of their own, as a durable store does.
#ifndef REMEX_SERVER_RPC_TASK_SERVICE_H_
#define REMEX_SERVER_RPC_TASK_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/executor/executor.h"
#include "server/executor/function_registry.h"
#include "server/executor/pool.h"
#include "server/executor/task.h"
#include "server/executor/task_query.h"

namespace remex::rpc {

// The calls of executor::Executor that the front end uses, with the same
// contracts: every `done` (and `registered`) runs exactly once, either
// inline, before the call returns, on the calling thread, or later, on any
// other thread; a DoneCallback or DoneListener may be told of a task's end
// before or after the call's own answer has run. The front end never waits
// for an answer: it is written for both cases.
//
// Thread-safe: every method may be called from any thread.
class TaskService {
 public:
  virtual ~TaskService() = default;

  virtual void SubmitAsync(executor::TaskSpec spec,
                           const executor::Caller& caller,
                           executor::DoneListener* listener, uint64_t tag,
                           executor::Executor::SubmitDone done) = 0;
  virtual void GetAsync(const std::string& id, const executor::Caller& caller,
                        executor::Executor::TaskDone done) = 0;
  virtual void CancelAsync(const std::string& id,
                           const executor::Caller& caller,
                           executor::Executor::TaskDone done) = 0;
  virtual void DeleteAsync(const std::string& id,
                           const executor::Caller& caller,
                           executor::Executor::StatusDone done) = 0;
  virtual void ListAsync(executor::ListQuery query,
                         const executor::Caller& caller,
                         executor::Executor::ListDone done) = 0;
  virtual void OnDoneAsync(const std::string& id,
                           executor::DoneCallback callback,
                           const executor::Caller& caller,
                           executor::Executor::StatusDone registered) = 0;

  virtual const executor::FunctionRegistry& functions() const = 0;
  // The pool a function runs on when a submit names none.
  virtual const std::string& DefaultPoolOf(
      const executor::FunctionSpec& function) const = 0;
  virtual std::vector<executor::PoolStats> PoolStatistics() const = 0;
};

// Forwards every call to an executor.
//
// Thread-safe. Does not own the executor, which must outlive it.
class ExecutorTaskService final : public TaskService {
 public:
  explicit ExecutorTaskService(executor::Executor& executor)
      : executor_(executor) {}

  void SubmitAsync(executor::TaskSpec spec, const executor::Caller& caller,
                   executor::DoneListener* listener, uint64_t tag,
                   executor::Executor::SubmitDone done) override;
  void GetAsync(const std::string& id, const executor::Caller& caller,
                executor::Executor::TaskDone done) override;
  void CancelAsync(const std::string& id, const executor::Caller& caller,
                   executor::Executor::TaskDone done) override;
  void DeleteAsync(const std::string& id, const executor::Caller& caller,
                   executor::Executor::StatusDone done) override;
  void ListAsync(executor::ListQuery query, const executor::Caller& caller,
                 executor::Executor::ListDone done) override;
  void OnDoneAsync(const std::string& id, executor::DoneCallback callback,
                   const executor::Caller& caller,
                   executor::Executor::StatusDone registered) override;

  const executor::FunctionRegistry& functions() const override;
  const std::string& DefaultPoolOf(
      const executor::FunctionSpec& function) const override;
  std::vector<executor::PoolStats> PoolStatistics() const override;

 private:
  executor::Executor& executor_;
};

}  // namespace remex::rpc

#endif  // REMEX_SERVER_RPC_TASK_SERVICE_H_
