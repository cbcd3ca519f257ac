#include "server/executor/task_queue.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace remex::executor {

absl::Status TaskQueue::Push(std::shared_ptr<Task> task, bool over_limit) {
  if (!over_limit && queue_.size() >= config_.max_queue) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pool '", config_.name, "' queue is full (max_queue ",
                     config_.max_queue, ")"));
  }
  task->queue.sequence = next_sequence_++;
  const QueueKey key = KeyOf(*task);
  queue_.emplace(key, std::move(task));
  return absl::OkStatus();
}

std::shared_ptr<Task> TaskQueue::PopFront() {
  if (queue_.empty()) return nullptr;
  auto first = queue_.begin();
  std::shared_ptr<Task> task = std::move(first->second);
  queue_.erase(first);
  return task;
}

bool TaskQueue::Remove(const Task& task) {
  auto it = queue_.find(KeyOf(task));
  if (it == queue_.end() || it->second.get() != &task) return false;
  queue_.erase(it);
  return true;
}

std::vector<std::shared_ptr<Task>> TaskQueue::TakeAll() {
  std::vector<std::shared_ptr<Task>> tasks;
  tasks.reserve(queue_.size());
  for (auto& [key, task] : queue_) tasks.push_back(std::move(task));
  queue_.clear();
  return tasks;
}

absl::Time TaskQueue::OldestCreatedAt() const {
  absl::Time oldest = absl::InfiniteFuture();
  for (auto it = queue_.begin(); it != queue_.end();) {
    oldest = std::min(oldest, it->second->created_at());
    // The head of the next priority.
    it = queue_.lower_bound(
        QueueKey{it->first.first + 1, std::numeric_limits<uint64_t>::min()});
  }
  return oldest;
}

}  // namespace remex::executor
