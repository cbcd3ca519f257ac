#include "server/executor/task_table.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"

namespace remex::executor {

TaskTable::Shard& TaskTable::ShardOf(absl::string_view id) const {
  return shards_[absl::HashOf(id) % kShards];
}

void TaskTable::Insert(std::shared_ptr<Task> task) {
  Shard& shard = ShardOf(task->id());
  Task* raw = task.get();
  absl::MutexLock lock(&shard.mu);
  if (shard.tasks.insert(std::move(task)).second) raw->table.listed = true;
}

std::shared_ptr<Task> TaskTable::Find(const std::string& id) const {
  Shard& shard = ShardOf(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.tasks.find(absl::string_view(id));
  return it == shard.tasks.end() ? nullptr : *it;
}

std::shared_ptr<Task> TaskTable::Erase(const std::string& id) {
  Shard& shard = ShardOf(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.tasks.find(absl::string_view(id));
  if (it == shard.tasks.end()) return nullptr;
  return EraseLocked(shard, it);
}

std::shared_ptr<Task> TaskTable::EraseLocked(
    Shard& shard, absl::btree_set<std::shared_ptr<Task>, ById>::iterator it) {
  std::shared_ptr<Task> task = *it;
  shard.tasks.erase(it);
  task->table.listed = false;
  UnretainLocked(shard, *task);
  return task;
}

void TaskTable::Retain(const std::shared_ptr<Task>& task, absl::Time expire_at,
                       size_t bytes) {
  bytes = std::min<size_t>(bytes, std::numeric_limits<uint32_t>::max());
  {
    Shard& shard = ShardOf(task->id());
    absl::MutexLock lock(&shard.mu);
    if (!task->table.listed || task->table.retained) return;
    task->table.retained = true;
    task->table.expire_at_nanos = absl::ToUnixNanos(expire_at);
    task->table.retained_bytes = bytes;
    shard.retention.insert({task->table.expire_at_nanos, task.get()});
    shard.first_expiry.store(shard.retention.begin()->first,
                             std::memory_order_relaxed);
    retained_tasks_.fetch_add(1, std::memory_order_relaxed);
    retained_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  while (OverBudget()) {
    if (EvictFirst() == nullptr) break;  // destroyed here, unlocked
  }
}

void TaskTable::EvictExpired(absl::Time now) {
  const int64_t now_nanos = absl::ToUnixNanos(now);
  std::vector<std::shared_ptr<Task>> evicted;
  for (Shard& shard : shards_) {
    if (shard.first_expiry.load(std::memory_order_relaxed) > now_nanos) {
      continue;
    }
    // In bounded batches, so that a sweep never holds a shard for long;
    // the tasks are destroyed after each batch, unlocked.
    bool more = true;
    while (more) {
      {
        absl::MutexLock lock(&shard.mu);
        for (int i = 0; i < kEvictBatch; ++i) {
          more = !shard.retention.empty() &&
                 shard.retention.begin()->first <= now_nanos;
          if (!more) break;
          Task* task = shard.retention.begin()->second;
          evicted.push_back(EraseLocked(
              shard, shard.tasks.find(absl::string_view(task->id()))));
        }
      }
      evicted.clear();
    }
  }
}

std::shared_ptr<Task> TaskTable::EvictFirst() {
  // The shard whose first entry expires first. Racy by design: another
  // thread may change the heads meanwhile, and then a task a moment younger
  // than the oldest goes first, which the budget tolerates.
  Shard* oldest = nullptr;
  int64_t oldest_expiry = std::numeric_limits<int64_t>::max();
  for (Shard& shard : shards_) {
    const int64_t expiry = shard.first_expiry.load(std::memory_order_relaxed);
    if (oldest == nullptr || expiry < oldest_expiry) {
      oldest = &shard;
      oldest_expiry = expiry;
    }
  }
  absl::MutexLock lock(&oldest->mu);
  if (oldest->retention.empty()) return nullptr;
  Task* task = oldest->retention.begin()->second;
  return EraseLocked(*oldest,
                     oldest->tasks.find(absl::string_view(task->id())));
}

void TaskTable::UnretainLocked(Shard& shard, Task& task) {
  if (!task.table.retained) return;
  shard.retention.erase({task.table.expire_at_nanos, &task});
  shard.first_expiry.store(shard.retention.empty()
                               ? std::numeric_limits<int64_t>::max()
                               : shard.retention.begin()->first,
                           std::memory_order_relaxed);
  retained_tasks_.fetch_sub(1, std::memory_order_relaxed);
  retained_bytes_.fetch_sub(task.table.retained_bytes,
                            std::memory_order_relaxed);
  task.table.retained = false;
}

bool TaskTable::OverBudget() const {
  const size_t tasks = retained_tasks_.load(std::memory_order_relaxed);
  return tasks > 0 &&
         (tasks > limits_.max_tasks ||
          retained_bytes_.load(std::memory_order_relaxed) > limits_.max_bytes);
}

void TaskTable::ForEach(
    const std::function<void(const std::shared_ptr<Task>&)>& visit) const {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const std::shared_ptr<Task>& task : shard.tasks) visit(task);
  }
}

TaskTable::Matches TaskTable::FirstMatchesAfter(
    const std::string& after, size_t limit,
    const std::function<bool(const Task&)>& match) const {
  const size_t max_visits = std::max(limit, kScanPerShard);
  Matches matches;
  // The least id at which a shard stopped before its end: past it, a shard
  // may hold matches not taken.
  std::optional<std::string> frontier;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    size_t taken = 0;
    size_t visits = 0;
    auto it = shard.tasks.upper_bound(absl::string_view(after));
    for (; it != shard.tasks.end() && taken < limit && visits < max_visits;
         ++it, ++visits) {
      if (!match(**it)) continue;
      matches.tasks.push_back(*it);
      ++taken;
    }
    if (it != shard.tasks.end() && visits > 0) {
      const std::string& last = (*std::prev(it))->id();
      if (!frontier.has_value() || last < *frontier) frontier = last;
    }
  }
  std::vector<std::shared_ptr<Task>>& tasks = matches.tasks;
  std::sort(tasks.begin(), tasks.end(),
            [](const std::shared_ptr<Task>& a, const std::shared_ptr<Task>& b) {
              return a->id() < b->id();
            });
  if (frontier.has_value()) {
    // Matches past the frontier would leave gaps: the next walk finds them.
    tasks.erase(std::upper_bound(tasks.begin(), tasks.end(), *frontier,
                                 [](const std::string& id,
                                    const std::shared_ptr<Task>& task) {
                                   return id < task->id();
                                 }),
                tasks.end());
  }
  if (tasks.size() > limit) {
    tasks.resize(limit);
    matches.resume_after = tasks.back()->id();
  } else if (frontier.has_value()) {
    matches.resume_after = *std::move(frontier);
  }
  return matches;
}

}  // namespace remex::executor
