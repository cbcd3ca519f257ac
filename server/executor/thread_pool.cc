#include "server/executor/thread_pool.h"

#include "absl/strings/str_cat.h"

namespace remex::executor {

ThreadPool::ThreadPool(PoolConfig config, TaskRunner& runner)
    : config_(std::move(config)), runner_(runner) {
  threads_.reserve(config_.workers);
  for (int i = 0; i < config_.workers; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

ThreadPool::~ThreadPool() { Shutdown(); }

absl::Status ThreadPool::Enqueue(std::shared_ptr<Task> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::FailedPreconditionError(
        absl::StrCat("pool '", config_.name, "' is shut down"));
  }
  return queue_.Push(std::move(task));
}

bool ThreadPool::RemoveQueued(const Task& task) {
  absl::MutexLock lock(&mu_);
  return queue_.Remove(task);
}

std::vector<std::shared_ptr<Task>> ThreadPool::TakeAllQueued() {
  absl::MutexLock lock(&mu_);
  return queue_.TakeAll();
}

PoolStats ThreadPool::Stats() const {
  absl::MutexLock lock(&mu_);
  return PoolStats{.name = config_.name,
                   .kind = config_.kind,
                   .workers = config_.workers,
                   .busy = busy_,
                   .queued = queue_.size(),
                   .oldest_queued_created_at = queue_.OldestCreatedAt(),
                   .max_queue = config_.max_queue};
}

void ThreadPool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void ThreadPool::WorkerLoop() {
  std::shared_ptr<Task> task;
  bool ran = false;
  for (;;) {
    {
      // One critical section per task: the end of the last one and the
      // start of the next.
      absl::MutexLock lock(&mu_);
      if (ran) --busy_;
      mu_.Await(absl::Condition(this, &ThreadPool::HasWorkOrStopping));
      if (stopping_) return;
      task = queue_.PopFront();
      ++busy_;
    }
    runner_.Run(task);
    task.reset();  // not under the lock: the last owner destroys it
    ran = true;
  }
}

}  // namespace remex::executor
