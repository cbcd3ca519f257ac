#include "tests/testing/wait.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace remex::testing {

bool WaitUntil(absl::FunctionRef<bool()> condition, absl::Duration timeout) {
  constexpr absl::Duration kLongestPause = absl::Milliseconds(10);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (!condition()) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, kLongestPause);
  }
  return true;
}

}  // namespace remex::testing
