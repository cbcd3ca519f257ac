#include "sdk/src/watcher.h"

#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/session.h"

namespace remex::internal {
namespace {

// How often a task followed by unary RPCs (no session slot) is polled.
constexpr absl::Duration kPollRound = absl::Milliseconds(20);

// Lives for the whole process (never destroyed: its detached thread may
// still wait when the process exits; actions pending then never run).
//
// A watch of a task followed by a session slot waits in `waiting_` under
// an id, and the slot's settle hook moves the id to `ready_`; the thread
// takes ready ids out of `waiting_` one by one (a hash lookup each), so
// nothing scans the watches. Watches of tasks followed by RPCs wait in
// `polled_`, polled together once per kPollRound. Lock order: a session's
// lock is never held while mu_ is taken (hooks run after the session
// released it), and the watcher holds mu_ while calling nothing else.
class Watcher {
 public:
  Watcher() {
    std::thread([this] { Loop(); }).detach();
  }

  // `state` was not done when last polled.
  void Add(std::shared_ptr<FutureState> state,
           absl::AnyInvocable<void()> action) {
    client::TaskSlot* const slot = state->PendingSlot();
    if (slot == nullptr) {
      AddPolled({std::move(state), std::move(action)});
      return;
    }
    client::Session* const session = state->session();
    uint64_t id = 0;
    {
      absl::MutexLock lock(&mu_);
      id = next_id_++;
      waiting_.emplace(id, Watch{std::move(state), std::move(action)});
    }
    // The watch holds the state, so the slot and its session outlive the
    // hook. A slot that settled meanwhile (or whose task went to RPCs)
    // is looked at by the thread at once.
    if (!session->NotifyWhenSettled(slot, [this, id] { Ready(id); })) {
      Ready(id);
    }
  }

  void AddChore(absl::AnyInvocable<void()> chore) {
    absl::MutexLock lock(&mu_);
    chores_.push_back(std::move(chore));
  }

 private:
  struct Watch {
    std::shared_ptr<FutureState> state;
    absl::AnyInvocable<void()> action;
  };

  // The settle hook of watch `id`: called once, by the session's polling
  // thread. Short: it only queues the id.
  void Ready(uint64_t id) {
    absl::MutexLock lock(&mu_);
    ready_.push_back(id);
  }

  void AddPolled(Watch watch) {
    absl::MutexLock lock(&mu_);
    fresh_.push_back(std::move(watch));
  }

  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !ready_.empty() || !chores_.empty() || !fresh_.empty();
  }

  void Loop() {
    std::vector<absl::AnyInvocable<void()>> chores;
    std::vector<Watch> polled;
    std::vector<Watch> to_poll;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        // Wake for a ready watch, a chore, or the next round of polls.
        mu_.AwaitWithDeadline(
            absl::Condition(this, &Watcher::HasWorkLocked),
            polled_.empty() ? absl::InfiniteFuture() : next_poll_);
        chores.swap(chores_);
        if (!polled_.empty() && absl::Now() >= next_poll_) {
          polled.swap(polled_);
          next_poll_ = absl::Now() + kPollRound;
        }
        for (const uint64_t id : ready_) {
          auto it = waiting_.find(id);
          polled.push_back(std::move(it->second));
          waiting_.erase(it);
        }
        ready_.clear();
        for (Watch& watch : fresh_) polled.push_back(std::move(watch));
        fresh_.clear();
      }
      for (absl::AnyInvocable<void()>& chore : chores) chore();
      chores.clear();
      // A ready watch is done unless its stream broke after acceptance
      // and the task runs on: then RPCs follow it. A fresh one is polled
      // once at once, then with the others.
      for (Watch& watch : polled) {
        if (watch.state->PollDone()) {
          watch.action();
        } else {
          to_poll.push_back(std::move(watch));
        }
      }
      polled.clear();
      if (!to_poll.empty()) {
        absl::MutexLock lock(&mu_);
        if (polled_.empty()) next_poll_ = absl::Now() + kPollRound;
        for (Watch& watch : to_poll) polled_.push_back(std::move(watch));
      }
      to_poll.clear();
    }
  }

  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  // Watches of tasks followed by a session slot, by id, until ready.
  absl::flat_hash_map<uint64_t, Watch> waiting_ ABSL_GUARDED_BY(mu_);
  // Ids of `waiting_` whose slot settled.
  std::vector<uint64_t> ready_ ABSL_GUARDED_BY(mu_);
  // Watches of tasks followed by unary RPCs, and when to poll them next.
  std::vector<Watch> polled_ ABSL_GUARDED_BY(mu_);
  absl::Time next_poll_ ABSL_GUARDED_BY(mu_);
  // Watches added by AddPolled, not yet polled by the thread.
  std::vector<Watch> fresh_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void()>> chores_ ABSL_GUARDED_BY(mu_);
};

Watcher& TheWatcher() {
  static Watcher* const watcher = new Watcher();
  return *watcher;
}

}  // namespace

void WhenDone(std::shared_ptr<FutureState> state,
              absl::AnyInvocable<void()> action) {
  if (state->Settled() && state->PollDone()) {
    action();
    return;
  }
  TheWatcher().Add(std::move(state), std::move(action));
}

void RunOnWatcher(absl::AnyInvocable<void()> chore) {
  TheWatcher().AddChore(std::move(chore));
}

}  // namespace remex::internal
