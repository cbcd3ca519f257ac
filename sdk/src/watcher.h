// The SDK's one internal thread that follows tasks for done-callbacks.
#ifndef REMEX_SDK_SRC_WATCHER_H_
#define REMEX_SDK_SRC_WATCHER_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "sdk/src/future_state.h"

namespace remex::internal {

// Calls `action` once `state` is done (its task terminal, or following it
// failed): at once on the calling thread if that is known already, else
// on the watcher thread, which waits on every watched task together (as
// WaitAny does, and as the leader of their session's completion queue:
// it is a gRPC-polling thread). `action` must be short and must not throw:
// it hands the caller's callback to its executor. The watch holds `state`
// (and so its session) until the task is done. Thread-safe.
void WhenDone(std::shared_ptr<FutureState> state,
              absl::AnyInvocable<void()> action);

// Runs `chore` (an RPC that nobody waits for, e.g. a cancel) on the
// watcher thread, soon. Thread-safe.
void RunOnWatcher(absl::AnyInvocable<void()> chore);

}  // namespace remex::internal

#endif  // REMEX_SDK_SRC_WATCHER_H_
