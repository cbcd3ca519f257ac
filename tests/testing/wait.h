// The one bounded wait of the tests: a condition polled until it holds or a
// timeout passes, never a bare sleep.
#ifndef REMEX_TESTS_TESTING_WAIT_H_
#define REMEX_TESTS_TESTING_WAIT_H_

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace remex::testing {

// How long a test waits for something that should happen promptly.
inline constexpr absl::Duration kWaitTimeout = absl::Seconds(10);

// Polls `condition` until it holds or `timeout` passes; returns whether it
// held. Polls every millisecond at first, then less often (every 10 ms at
// most), so that a quick condition is seen at once and a costly one (an RPC,
// a scan of /proc) does not take a core. Thread-compatible.
bool WaitUntil(absl::FunctionRef<bool()> condition,
               absl::Duration timeout = kWaitTimeout);

}  // namespace remex::testing

#endif  // REMEX_TESTS_TESTING_WAIT_H_
