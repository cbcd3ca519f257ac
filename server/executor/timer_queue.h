// One thread that runs callbacks at deadlines.
#ifndef REMEX_SERVER_EXECUTOR_TIMER_QUEUE_H_
#define REMEX_SERVER_EXECUTOR_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace remex::executor {

// Runs each scheduled callback once, on its own thread, at or soon after its
// deadline, in deadline order. Callbacks must be short and must not block:
// they share one thread.
//
// Thread-safe. Callbacks run without the queue's lock held, so they may
// Schedule or Cancel. The destructor stops the thread; callbacks not yet due
// are dropped.
class TimerQueue {
 public:
  using TimerId = uint64_t;  // never 0

  TimerQueue();
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  TimerId Schedule(absl::Time deadline, std::function<void()> callback);

  // Drops the timer if it has not run yet. Unknown ids are ignored.
  void Cancel(TimerId id);

  size_t pending() const;

 private:
  using Key = std::pair<absl::Time, TimerId>;

  void Loop();

  mutable absl::Mutex mu_;
  absl::CondVar wakeup_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::btree_map<Key, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace remex::executor

#endif  // REMEX_SERVER_EXECUTOR_TIMER_QUEUE_H_
