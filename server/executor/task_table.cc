#include "server/executor/task_table.h"

#include <algorithm>
#include <vector>

#include "absl/hash/hash.h"

namespace remex::executor {

TaskTable::Shard& TaskTable::ShardOf(const std::string& id) const {
  return shards_[absl::HashOf(id) % kShards];
}

void TaskTable::Insert(std::shared_ptr<Task> task) {
  Shard& shard = ShardOf(task->id());
  absl::MutexLock lock(&shard.mu);
  const std::string& id = task->id();
  shard.tasks.emplace(id, std::move(task));
}

std::shared_ptr<Task> TaskTable::Find(const std::string& id) const {
  Shard& shard = ShardOf(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.tasks.find(id);
  return it == shard.tasks.end() ? nullptr : it->second;
}

std::shared_ptr<Task> TaskTable::Erase(const std::string& id) {
  std::shared_ptr<Task> task;
  {
    Shard& shard = ShardOf(id);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.tasks.find(id);
    if (it == shard.tasks.end()) return nullptr;
    task = std::move(it->second);
    shard.tasks.erase(it);
  }
  absl::MutexLock lock(&retention_mu_);
  UnretainLocked(*task);
  return task;
}

void TaskTable::Retain(const std::shared_ptr<Task>& task, absl::Time expire_at,
                       size_t bytes) {
  std::vector<std::shared_ptr<Task>> evicted;  // destroyed after unlocking
  absl::MutexLock lock(&retention_mu_);
  {
    Shard& shard = ShardOf(task->id());
    absl::MutexLock shard_lock(&shard.mu);
    auto it = shard.tasks.find(task->id());
    if (it == shard.tasks.end() || it->second != task) return;
  }
  if (task->retained) return;
  task->retained = true;
  task->expire_at = expire_at;
  task->retained_bytes = bytes;
  retention_.insert({expire_at, task.get()});
  retained_bytes_ += bytes;
  while (OverBudgetLocked()) evicted.push_back(EvictFirstLocked());
}

void TaskTable::EvictExpired(absl::Time now) {
  std::vector<std::shared_ptr<Task>> evicted;
  absl::MutexLock lock(&retention_mu_);
  while (!retention_.empty() && retention_.begin()->first <= now) {
    evicted.push_back(EvictFirstLocked());
  }
}

void TaskTable::ForEach(
    const std::function<void(const std::shared_ptr<Task>&)>& visit) const {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [id, task] : shard.tasks) visit(task);
  }
}

std::vector<std::shared_ptr<Task>> TaskTable::FirstMatchesAfter(
    const std::string& after, size_t limit,
    const std::function<bool(const Task&)>& match) const {
  std::vector<std::shared_ptr<Task>> matches;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    size_t taken = 0;
    for (auto it = shard.tasks.upper_bound(after);
         it != shard.tasks.end() && taken < limit; ++it) {
      if (!match(*it->second)) continue;
      matches.push_back(it->second);
      ++taken;
    }
  }
  const auto by_id = [](const std::shared_ptr<Task>& a,
                        const std::shared_ptr<Task>& b) {
    return a->id() < b->id();
  };
  const size_t kept = std::min(limit, matches.size());
  std::partial_sort(matches.begin(), matches.begin() + kept, matches.end(),
                    by_id);
  matches.resize(kept);
  return matches;
}

size_t TaskTable::retained_tasks() const {
  absl::MutexLock lock(&retention_mu_);
  return retention_.size();
}

size_t TaskTable::retained_bytes() const {
  absl::MutexLock lock(&retention_mu_);
  return retained_bytes_;
}

std::shared_ptr<Task> TaskTable::EvictFirstLocked() {
  Task& task = *retention_.begin()->second;
  const std::string id = task.id();
  UnretainLocked(task);
  Shard& shard = ShardOf(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.tasks.find(id);
  if (it == shard.tasks.end()) return nullptr;
  std::shared_ptr<Task> evicted = std::move(it->second);
  shard.tasks.erase(it);
  return evicted;
}

void TaskTable::UnretainLocked(Task& task) {
  if (!task.retained) return;
  retention_.erase({task.expire_at, &task});
  retained_bytes_ -= task.retained_bytes;
  task.retained = false;
}

bool TaskTable::OverBudgetLocked() const {
  return !retention_.empty() && (retention_.size() > limits_.max_tasks ||
                                 retained_bytes_ > limits_.max_bytes);
}

}  // namespace remex::executor
