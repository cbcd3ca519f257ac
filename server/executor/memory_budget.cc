#include "server/executor/memory_budget.h"

#include <algorithm>
#include <limits>

namespace remex::executor {
namespace {

int64_t Signed(size_t bytes) {
  return static_cast<int64_t>(
      std::min<size_t>(bytes, std::numeric_limits<int64_t>::max()));
}

}  // namespace

bool MemoryBudget::TryAdmit(size_t bytes, size_t retained) {
  // Admissions race through one counter: queued_ is the one they all
  // change, so a compare-and-swap on it makes the check and the charge one
  // step (running_ only takes bytes that queued_ held).
  int64_t queued = queued_.load(std::memory_order_relaxed);
  while (true) {
    const size_t used =
        static_cast<size_t>(std::max<int64_t>(0, queued)) + running();
    if (bytes > limit_ || used > limit_ - bytes ||
        retained > limit_ - bytes - used) {
      return false;
    }
    if (queued_.compare_exchange_weak(queued, queued + Signed(bytes),
                                      std::memory_order_relaxed)) {
      return true;
    }
  }
}

void MemoryBudget::Add(size_t bytes) {
  queued_.fetch_add(Signed(bytes), std::memory_order_relaxed);
}

void MemoryBudget::MoveToRunning(size_t bytes) {
  // Added first, so that live() never reads low by a moving task.
  running_.fetch_add(Signed(bytes), std::memory_order_relaxed);
  queued_.fetch_sub(Signed(bytes), std::memory_order_relaxed);
}

void MemoryBudget::MoveToQueued(size_t bytes) {
  queued_.fetch_add(Signed(bytes), std::memory_order_relaxed);
  running_.fetch_sub(Signed(bytes), std::memory_order_relaxed);
}

void MemoryBudget::Release(size_t bytes, bool running) {
  (running ? running_ : queued_)
      .fetch_sub(Signed(bytes), std::memory_order_relaxed);
}

size_t MemoryBudget::AtLeastZero(const std::atomic<int64_t>& count) {
  return static_cast<size_t>(
      std::max<int64_t>(0, count.load(std::memory_order_relaxed)));
}

}  // namespace remex::executor
