// The SDK's one internal thread that hands done-callbacks over.
#ifndef REMEX_SDK_SRC_WATCHER_H_
#define REMEX_SDK_SRC_WATCHER_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "sdk/src/future_state.h"

namespace remex::internal {

// Calls `action` once `state` is done (its task terminal, or following it
// failed): at once on the calling thread if that is known already, else
// on the watcher thread. A task followed by a session slot costs the
// watcher nothing while it runs: the slot's settle hook
// (Session::NotifyWhenSettled, called by whichever thread reads the task's end
// off the stream, or by the session's own poller when nobody waits) puts the
// watch on the watcher's ready list and wakes it, so each end costs O(1)
// however many watches are pending, and futures of several sessions are
// followed by their own sessions' threads side by side. A task followed by
// unary RPCs (no session, or its stream broke after acceptance) is polled, one
// RPC every 20 ms. `action` must be short and must not throw: it hands the
// caller's callback to its executor. The watch holds `state` (and so its
// session) until the task is done. Thread-safe.
void WhenDone(std::shared_ptr<FutureState> state,
              absl::AnyInvocable<void()> action);

// Runs `chore` (an RPC that nobody waits for, e.g. a cancel) on the
// watcher thread; it is taken in at once, between two actions. Thread-safe.
void RunOnWatcher(absl::AnyInvocable<void()> chore);

}  // namespace remex::internal

#endif  // REMEX_SDK_SRC_WATCHER_H_
