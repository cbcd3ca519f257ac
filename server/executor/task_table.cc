#include "server/executor/task_table.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace remex::executor {

TaskTable::Shard& TaskTable::ShardOf(absl::string_view id) const {
  // The top bits of the hash: the id index of the shard uses the low ones
  // (its control bytes), which would otherwise be alike in every entry.
  static_assert(kShards == 32);
  return shards_[absl::HashOf(id) >> (64 - 5)];
}

void TaskTable::Insert(std::shared_ptr<Task> task) {
  Shard& shard = ShardOf(task->id());
  Task* raw = task.get();
  absl::MutexLock lock(&shard.mu);
  auto [slot, fresh] = shard.by_id.insert(raw);
  if (!fresh) return;
  if (!shard.tasks.insert(std::move(task)).second) {
    // A list position used twice in this shard (Insert REQUIRES otherwise;
    // across shards it would go unseen): keep the indexes consistent.
    shard.by_id.erase(slot);
    return;
  }
  raw->table.listed = true;
}

std::shared_ptr<Task> TaskTable::Find(const std::string& id) const {
  Shard& shard = ShardOf(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.by_id.find(absl::string_view(id));
  // `tasks` owns it, so it is alive: no second lookup for the owner.
  return it == shard.by_id.end() ? nullptr : (*it)->shared_from_this();
}

std::shared_ptr<Task> TaskTable::Erase(const std::string& id) {
  Shard& shard = ShardOf(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.by_id.find(absl::string_view(id));
  if (it == shard.by_id.end()) return nullptr;
  return EraseLocked(shard, **it);
}

std::shared_ptr<Task> TaskTable::EraseLocked(Shard& shard, const Task& task) {
  auto it = shard.tasks.find(task.list_position());
  std::shared_ptr<Task> owned = *it;
  shard.by_id.erase(owned.get());
  shard.tasks.erase(it);
  owned->table.listed = false;
  UnretainLocked(shard, *owned);
  return owned;
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
          evicted.push_back(
              EraseLocked(shard, *shard.retention.begin()->second));
        }
      }
      evicted.clear();
    }
  }
}

void TaskTable::EvictWhile(absl::FunctionRef<bool()> over_budget) {
  while (retained_tasks_.load(std::memory_order_relaxed) > 0 && over_budget()) {
    if (EvictFirst() == nullptr) break;  // destroyed here, unlocked
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
  return EraseLocked(*oldest, *oldest->retention.begin()->second);
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
    uint64_t after, size_t limit,
    const std::function<bool(const Task&)>& match) const {
  const size_t max_visits = std::max(limit, kScanPerShard);
  Matches matches;
  // The least list position at which a shard stopped before its end: past
  // it, a shard may hold matches not taken.
  std::optional<uint64_t> frontier;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    size_t taken = 0;
    size_t visits = 0;
    auto it = shard.tasks.upper_bound(after);
    for (; it != shard.tasks.end() && taken < limit && visits < max_visits;
         ++it, ++visits) {
      if (!match(**it)) continue;
      matches.tasks.push_back(*it);
      ++taken;
    }
    if (it != shard.tasks.end() && visits > 0) {
      const uint64_t last = (*std::prev(it))->list_position();
      if (!frontier.has_value() || last < *frontier) frontier = last;
    }
  }
  std::vector<std::shared_ptr<Task>>& tasks = matches.tasks;
  std::sort(tasks.begin(), tasks.end(),
            [](const std::shared_ptr<Task>& a, const std::shared_ptr<Task>& b) {
              return a->list_position() < b->list_position();
            });
  if (frontier.has_value()) {
    // Matches past the frontier would leave gaps: the next walk finds them.
    tasks.erase(std::upper_bound(
                    tasks.begin(), tasks.end(), *frontier,
                    [](uint64_t position, const std::shared_ptr<Task>& task) {
                      return position < task->list_position();
                    }),
                tasks.end());
  }
  if (tasks.size() > limit) {
    tasks.resize(limit);
    matches.resume_after = tasks.back()->list_position();
  } else {
    matches.resume_after = frontier;
  }
  return matches;
}

}  // namespace remex::executor
