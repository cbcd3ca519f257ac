#include "sdk/src/watcher.h"

#include <algorithm>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "remex/future.h"

namespace remex::internal {
namespace {

// How long one wait of the watcher lasts before it takes in the watches
// added meanwhile: the longest a watch of a running task waits to join.
constexpr absl::Duration kRound = absl::Milliseconds(20);

// True if `state` is done, without blocking (one RPC for a task followed
// by RPCs). An error counts as done: get() and result() report it.
bool PollDone(FutureState& state) {
  const absl::StatusOr<bool> terminal = state.WaitUntil(absl::InfinitePast());
  return !terminal.ok() || *terminal;
}

// Lives for the whole process (never destroyed: its detached thread may
// still wait when the process exits; actions pending then never run).
class Watcher {
 public:
  Watcher() {
    std::thread([this] { Loop(); }).detach();
  }

  void Add(std::shared_ptr<FutureState> state,
           absl::AnyInvocable<void()> action) {
    absl::MutexLock lock(&mu_);
    watches_.push_back({next_id_++, std::move(state), std::move(action)});
  }
  void AddChore(absl::AnyInvocable<void()> chore) {
    absl::MutexLock lock(&mu_);
    chores_.push_back(std::move(chore));
  }

 private:
  struct Watch {
    uint64_t id;
    std::shared_ptr<FutureState> state;
    absl::AnyInvocable<void()> action;
  };

  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !watches_.empty() || !chores_.empty();
  }

  void Loop() {
    std::vector<absl::AnyInvocable<void()>> chores;
    std::vector<uint64_t> ids;
    std::vector<Future> futures;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Watcher::HasWorkLocked));
        chores.swap(chores_);
        ids.clear();
        futures.clear();
        for (const Watch& watch : watches_) {
          ids.push_back(watch.id);
          futures.push_back(FutureAccess::Make(watch.state));
        }
      }
      for (absl::AnyInvocable<void()>& chore : chores) chore();
      chores.clear();
      if (futures.empty()) continue;
      const std::optional<size_t> first =
          WaitAny(futures, absl::Now() + kRound);
      if (!first.has_value()) continue;
      // The first one done, and every other one known to be done without
      // waiting.
      std::vector<uint64_t> done = {ids[*first]};
      for (size_t i = 0; i < futures.size(); ++i) {
        FutureState& state = FutureAccess::State(futures[i]);
        if (i != *first && state.Settled() && PollDone(state)) {
          done.push_back(ids[i]);
        }
      }
      std::vector<Watch> finished;
      {
        absl::MutexLock lock(&mu_);
        std::vector<Watch> kept;
        kept.reserve(watches_.size());
        size_t next = 0;  // ids are increasing, and so is `done`, sorted
        std::sort(done.begin(), done.end());
        for (Watch& watch : watches_) {
          while (next < done.size() && done[next] < watch.id) ++next;
          if (next < done.size() && done[next] == watch.id) {
            finished.push_back(std::move(watch));
          } else {
            kept.push_back(std::move(watch));
          }
        }
        watches_.swap(kept);
      }
      for (Watch& watch : finished) watch.action();
    }
  }

  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  // In the order added, so with increasing ids.
  std::vector<Watch> watches_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void()>> chores_ ABSL_GUARDED_BY(mu_);
};

Watcher& TheWatcher() {
  static Watcher* const watcher = new Watcher();
  return *watcher;
}

}  // namespace

void WhenDone(std::shared_ptr<FutureState> state,
              absl::AnyInvocable<void()> action) {
  if (state->Settled() && PollDone(*state)) {
    action();
    return;
  }
  TheWatcher().Add(std::move(state), std::move(action));
}

void RunOnWatcher(absl::AnyInvocable<void()> chore) {
  TheWatcher().AddChore(std::move(chore));
}

}  // namespace remex::internal
