// A pool of threads in this process.
#ifndef REMEX_SERVER_EXECUTOR_THREAD_POOL_H_
#define REMEX_SERVER_EXECUTOR_THREAD_POOL_H_

#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/executor/pool.h"
#include "server/executor/task_queue.h"

namespace remex::executor {

// config().workers threads, each taking the first task of a shared priority
// queue and running it through the TaskRunner. Cancellation is cooperative: a
// thread cannot be stopped, so a function that ignores its token keeps its
// worker busy until it returns.
//
// Thread-safe.
class ThreadPool final : public Pool {
 public:
  // Starts the workers. REQUIRES: config.workers > 0; `runner` outlives the
  // pool.
  ThreadPool(PoolConfig config, TaskRunner& runner);
  ~ThreadPool() override;

  const PoolConfig& config() const override { return config_; }
  absl::Status Enqueue(std::shared_ptr<Task> task) override;
  bool RemoveQueued(const Task& task) override;
  std::vector<std::shared_ptr<Task>> TakeAllQueued() override;
  PoolStats Stats() const override;
  void Shutdown() override;

 private:
  void WorkerLoop();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  const PoolConfig config_;
  TaskRunner& runner_;

  mutable absl::Mutex mu_;
  TaskQueue queue_ ABSL_GUARDED_BY(mu_){config_};
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_THREAD_POOL_H_
