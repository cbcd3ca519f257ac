// Process pools: tasks run in worker processes that the pool starts, feeds,
// watches and replaces, so that a task that crashes, leaks or will not stop
// costs one worker, never the server.
#ifndef REMEX_SERVER_PROCESS_PROCESS_POOL_H_
#define REMEX_SERVER_PROCESS_PROCESS_POOL_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor/pool.h"
#include "server/executor/task_queue.h"
#include "server/process/worker_process.h"

namespace remex::process {

// The factory the server registers for PoolKind::kProcess.
executor::PoolFactory ProcessPoolFactory(WorkerCommand command);

namespace internal {
class Supervisor;
}  // namespace internal

// config().workers worker processes fed from one priority queue (the same
// TaskQueue as thread pools) by one supervisor thread, which alone spawns,
// reaps and kills them (its own children only, by pid).
//
// A worker that dies ends its task WORKER_LOST, with the cause in the error,
// or re-queues it while the task's max_attempts allow; the pool replaces the
// worker. A cancelled or timed-out task (already ended by the executor) has
// its worker asked to stop through the task's token; a worker that has not
// answered after config().cancel_grace is killed and replaced.
//
// A worker that is ended (killed after a cancel, recycled, shut down, or
// dead on its own) takes with it whatever it left running in its session:
// the commands its functions ran and their descendants.
//
// Thread-safe. Workers are killed and reaped by Shutdown(). They die with
// the server, even on kill -9 (PR_SET_PDEATHSIG); what they left running
// then is killed by the server's janitor (janitor.h), when it has one.
class ProcessPool final : public executor::Pool {
 public:
  // Starts the supervisor and waits until the first workers are ready.
  // UNAVAILABLE (with the cause) if they cannot be started.
  // REQUIRES: `runner` outlives the pool.
  static absl::StatusOr<std::unique_ptr<ProcessPool>> Create(
      executor::PoolConfig config, executor::TaskRunner& runner,
      WorkerCommand command);
  ~ProcessPool() override;

  const executor::PoolConfig& config() const override { return config_; }
  absl::Status Enqueue(std::shared_ptr<executor::Task> task) override;
  bool RemoveQueued(const executor::Task& task) override;
  std::vector<std::shared_ptr<executor::Task>> TakeAllQueued() override;
  executor::PoolStats Stats() const override;
  // Kills and reaps every worker; a task still running ends CANCELLED.
  void Shutdown() override;

  // The pids of the live workers (for tests and diagnostics).
  std::vector<pid_t> WorkerPids() const;

 private:
  friend class internal::Supervisor;

  ProcessPool(executor::PoolConfig config, executor::TaskRunner& runner,
              WorkerCommand command);

  const executor::PoolConfig config_;
  executor::TaskRunner& runner_;
  const WorkerCommand command_;
  std::unique_ptr<internal::Supervisor> supervisor_;

  // Shared with the supervisor thread.
  mutable absl::Mutex mu_;
  executor::TaskQueue queue_ ABSL_GUARDED_BY(mu_){config_};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Mirrors of the supervisor's view, for Stats().
  std::vector<pid_t> pids_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> restarts_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace remex::process

#endif  // REMEX_SERVER_PROCESS_PROCESS_POOL_H_
