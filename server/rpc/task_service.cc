#include "server/rpc/task_service.h"

#include <utility>

namespace remex::rpc {

void ExecutorTaskService::SubmitAsync(executor::TaskSpec spec,
                                      const executor::Caller& caller,
                                      executor::DoneListener* listener,
                                      uint64_t tag,
                                      executor::Executor::SubmitDone done) {
  executor_.SubmitAsync(std::move(spec), caller, listener, tag,
                        std::move(done));
}

void ExecutorTaskService::GetAsync(const std::string& id,
                                   const executor::Caller& caller,
                                   executor::Executor::TaskDone done) {
  executor_.GetAsync(id, caller, std::move(done));
}

void ExecutorTaskService::CancelAsync(const std::string& id,
                                      const executor::Caller& caller,
                                      executor::Executor::TaskDone done) {
  executor_.CancelAsync(id, caller, std::move(done));
}

void ExecutorTaskService::DeleteAsync(const std::string& id,
                                      const executor::Caller& caller,
                                      executor::Executor::StatusDone done) {
  executor_.DeleteAsync(id, caller, std::move(done));
}

void ExecutorTaskService::ListAsync(executor::ListQuery query,
                                    const executor::Caller& caller,
                                    executor::Executor::ListDone done) {
  executor_.ListAsync(std::move(query), caller, std::move(done));
}

void ExecutorTaskService::OnDoneAsync(
    const std::string& id, executor::DoneCallback callback,
    const executor::Caller& caller, executor::Executor::StatusDone registered) {
  executor_.OnDoneAsync(id, std::move(callback), caller, std::move(registered));
}

const executor::FunctionRegistry& ExecutorTaskService::functions() const {
  return executor_.functions();
}

const std::string& ExecutorTaskService::DefaultPoolOf(
    const executor::FunctionSpec& function) const {
  return executor_.DefaultPoolOf(function);
}

std::vector<executor::PoolStats> ExecutorTaskService::PoolStatistics() const {
  return executor_.PoolStatistics();
}

}  // namespace remex::rpc
