#include "server/executor/timer_queue.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/wait.h"

namespace remex::executor {
namespace {

using ::remex::testing::kWaitTimeout;
using ::remex::testing::WaitUntil;
using ::testing::ElementsAre;

// Collects the names of the timers that ran, in order.
class Log {
 public:
  std::function<void()> Append(std::string name) {
    return [this, name = std::move(name)] {
      absl::MutexLock lock(&mu_);
      entries_.push_back(name);
    };
  }
  std::vector<std::string> entries() const {
    absl::MutexLock lock(&mu_);
    return entries_;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> entries_ ABSL_GUARDED_BY(mu_);
};

TEST(TimerQueueTest, RunsCallbacksInDeadlineOrder) {
  Log log;
  TimerQueue timers;
  const absl::Time now = absl::Now();
  timers.Schedule(now + absl::Milliseconds(60), log.Append("c"));
  timers.Schedule(now + absl::Milliseconds(20), log.Append("a"));
  timers.Schedule(now + absl::Milliseconds(40), log.Append("b"));
  EXPECT_EQ(timers.pending(), 3u);
  ASSERT_TRUE(WaitUntil([&] { return log.size() == 3; }));
  EXPECT_THAT(log.entries(), ElementsAre("a", "b", "c"));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(TimerQueueTest, EqualDeadlinesRunInScheduleOrder) {
  Log log;
  TimerQueue timers;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(20);
  for (const char* name : {"1", "2", "3", "4"}) {
    timers.Schedule(deadline, log.Append(name));
  }
  ASSERT_TRUE(WaitUntil([&] { return log.size() == 4; }));
  EXPECT_THAT(log.entries(), ElementsAre("1", "2", "3", "4"));
}

TEST(TimerQueueTest, DoesNotRunBeforeTheDeadline) {
  TimerQueue timers;
  absl::Notification ran;
  absl::Time ran_at;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(50);
  timers.Schedule(deadline, [&] {
    ran_at = absl::Now();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_GE(ran_at, deadline);
}

TEST(TimerQueueTest, PastDeadlineRunsPromptlyOnTheTimerThread) {
  TimerQueue timers;
  absl::Notification ran;
  std::thread::id ran_on;
  timers.Schedule(absl::Now() - absl::Seconds(1), [&] {
    ran_on = std::this_thread::get_id();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(TimerQueueTest, AnEarlierTimerWakesTheThread) {
  TimerQueue timers;
  absl::Notification late;
  absl::Notification early;
  timers.Schedule(absl::Now() + absl::Hours(1), [&] { late.Notify(); });
  const absl::Time start = absl::Now();
  timers.Schedule(start + absl::Milliseconds(10), [&] { early.Notify(); });
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(late.HasBeenNotified());
  EXPECT_EQ(timers.pending(), 1u);
}

TEST(TimerQueueTest, CancelledTimerNeverRuns) {
  Log log;
  TimerQueue timers;
  const absl::Time now = absl::Now();
  const TimerQueue::TimerId cancelled =
      timers.Schedule(now + absl::Milliseconds(20), log.Append("cancelled"));
  timers.Schedule(now + absl::Milliseconds(60), log.Append("kept"));
  timers.Cancel(cancelled);
  EXPECT_EQ(timers.pending(), 1u);
  ASSERT_TRUE(WaitUntil([&] { return log.size() == 1; }));
  EXPECT_THAT(log.entries(), ElementsAre("kept"));
}

TEST(TimerQueueTest, CancelOfUnknownOrFinishedTimerIsIgnored) {
  TimerQueue timers;
  absl::Notification ran;
  const TimerQueue::TimerId id =
      timers.Schedule(absl::Now(), [&] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kWaitTimeout));
  timers.Cancel(id);
  timers.Cancel(id + 1000);
  timers.Cancel(0);
  EXPECT_EQ(timers.pending(), 0u);
  // Still works.
  absl::Notification again;
  timers.Schedule(absl::Now(), [&] { again.Notify(); });
  EXPECT_TRUE(again.WaitForNotificationWithTimeout(kWaitTimeout));
}

TEST(TimerQueueTest, IdsAreNonZeroAndUnique) {
  TimerQueue timers;
  absl::flat_hash_set<TimerQueue::TimerId> ids;
  for (int i = 0; i < 1000; ++i) {
    const TimerQueue::TimerId id =
        timers.Schedule(absl::Now() + absl::Hours(1), [] {});
    EXPECT_NE(id, 0u);
    EXPECT_TRUE(ids.insert(id).second) << id;
  }
  EXPECT_EQ(timers.pending(), 1000u);
}

TEST(TimerQueueTest, CallbacksMayScheduleAndCancelTimers) {
  Log log;
  TimerQueue timers;
  // A chain: each callback schedules the next.
  std::function<void(int)> step = [&](int i) {
    log.Append("step" + std::to_string(i))();
    if (i < 5) {
      timers.Schedule(absl::Now() + absl::Milliseconds(1),
                      [&step, i] { step(i + 1); });
    }
  };
  // A callback that cancels a later timer.
  const TimerQueue::TimerId victim = timers.Schedule(
      absl::Now() + absl::Milliseconds(200), log.Append("victim"));
  timers.Schedule(absl::Now(), [&] { timers.Cancel(victim); });
  timers.Schedule(absl::Now(), [&] { step(1); });

  ASSERT_TRUE(WaitUntil([&] { return log.size() == 5; }));
  // Wait past the victim's deadline, bounded, to see that it stays cancelled.
  absl::Notification sentinel;
  timers.Schedule(absl::Now() + absl::Milliseconds(250),
                  [&] { sentinel.Notify(); });
  ASSERT_TRUE(sentinel.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_THAT(log.entries(),
              ElementsAre("step1", "step2", "step3", "step4", "step5"));
}

TEST(TimerQueueTest, DestructorDropsTimersNotYetDue) {
  auto ran = std::make_shared<std::atomic<bool>>(false);
  const absl::Time start = absl::Now();
  {
    TimerQueue timers;
    timers.Schedule(absl::Now() + absl::Hours(1), [ran] { *ran = true; });
  }
  EXPECT_FALSE(*ran);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(TimerQueueTest, ConcurrentScheduleAndCancel) {
  TimerQueue timers;
  std::atomic<int> ran{0};
  std::atomic<int> expected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        const TimerQueue::TimerId id = timers.Schedule(
            absl::Now() + absl::Milliseconds(i % 5), [&] { ran.fetch_add(1); });
        if (i % 2 == 0) {
          timers.Cancel(id);  // may be too late: then it ran
        } else {
          expected.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(WaitUntil(
      [&] { return timers.pending() == 0 && ran.load() >= expected.load(); }));
  EXPECT_LE(ran.load(), 2000);
}

}  // namespace
}  // namespace remex::executor
