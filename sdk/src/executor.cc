#include "remex/executor.h"

#include <utility>

namespace remex {

ThreadExecutor::ThreadExecutor() : thread_([this] { Loop(); }) {}

ThreadExecutor::~ThreadExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void ThreadExecutor::Run(absl::AnyInvocable<void()> callback) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  queue_.push_back(std::move(callback));
}

void ThreadExecutor::Loop() {
  for (;;) {
    absl::AnyInvocable<void()> callback;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, and nothing left
      callback = std::move(queue_.front());
      queue_.pop_front();
    }
    callback();
  }
}

}  // namespace remex
