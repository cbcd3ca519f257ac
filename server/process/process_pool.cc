#include "server/process/process_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/process/supervisor.h"

namespace remex::process {

executor::PoolFactory ProcessPoolFactory(WorkerCommand command) {
  return [command](const executor::PoolConfig& config,
                   executor::TaskRunner& runner)
             -> absl::StatusOr<std::unique_ptr<executor::Pool>> {
    absl::StatusOr<std::unique_ptr<ProcessPool>> pool =
        ProcessPool::Create(config, runner, command);
    if (!pool.ok()) return pool.status();
    return std::unique_ptr<executor::Pool>(std::move(*pool));
  };
}

ProcessPool::ProcessPool(executor::PoolConfig config,
                         executor::TaskRunner& runner, WorkerCommand command)
    : config_(std::move(config)),
      runner_(runner),
      command_(std::move(command)),
      supervisor_(std::make_unique<internal::Supervisor>(*this)) {}

absl::StatusOr<std::unique_ptr<ProcessPool>> ProcessPool::Create(
    executor::PoolConfig config, executor::TaskRunner& runner,
    WorkerCommand command) {
  std::unique_ptr<ProcessPool> pool(
      new ProcessPool(std::move(config), runner, std::move(command)));
  // The supervisor thread spawns the workers: PR_SET_PDEATHSIG ties them to
  // the thread that started them, which lives as long as the pool.
  pool->thread_ = std::thread([raw = pool.get()] { raw->supervisor_->Loop(); });
  const absl::Status started = pool->supervisor_->AwaitStartup(
      absl::Now() + pool->command_.startup_timeout);
  if (!started.ok()) return started;  // ~ProcessPool stops the rest.
  return pool;
}

ProcessPool::~ProcessPool() { Shutdown(); }

absl::Status ProcessPool::Enqueue(std::shared_ptr<executor::Task> task) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::FailedPreconditionError(
          absl::StrCat("pool '", config_.name, "' is shut down"));
    }
    if (absl::Status status = queue_.Push(std::move(task)); !status.ok()) {
      return status;
    }
  }
  supervisor_->Notify();
  return absl::OkStatus();
}

bool ProcessPool::RemoveQueued(const executor::Task& task) {
  absl::MutexLock lock(&mu_);
  return queue_.Remove(task);
}

std::vector<std::shared_ptr<executor::Task>> ProcessPool::TakeAllQueued() {
  absl::MutexLock lock(&mu_);
  return queue_.TakeAll();
}

executor::PoolStats ProcessPool::Stats() const {
  absl::MutexLock lock(&mu_);
  return executor::PoolStats{
      .name = config_.name,
      .kind = config_.kind,
      .workers = static_cast<int>(pids_.size()),
      .busy = busy_,
      .queued = queue_.size(),
      .oldest_queued_created_at = queue_.OldestCreatedAt(),
      .max_queue = config_.max_queue,
      .worker_restarts = restarts_};
}

std::vector<pid_t> ProcessPool::WorkerPids() const {
  absl::MutexLock lock(&mu_);
  return pids_;
}

void ProcessPool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  supervisor_->Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace remex::process
