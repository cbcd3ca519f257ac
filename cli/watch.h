// `remex watch`: follows tasks until they end, as a live table on a terminal
// or as JSON lines (one per change) for programs.
#ifndef REMEX_CLI_WATCH_H_
#define REMEX_CLI_WATCH_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "remex/client.h"
#include "remex/v1/executor.pb.h"

namespace remex::cli {

enum class WatchDisplay {
  // A table redrawn in place, with a summary line and a progress bar.
  kLive,
  // One compact JSON task object per line, each time a task is first seen
  // or its state, attempt or cancel_requested changes.
  kJsonLines,
  // The id of each task, once, when it ends.
  kIds,
};

struct WatchCommand {
  // The tasks to follow; empty: the tasks that `filters` lists (its state,
  // function and pool), followed until they end even once they no longer
  // match.
  std::vector<std::string> ids;
  v1::ListRequest filters;
  // How often the tasks are asked for (with ids, the end of the first one
  // not ended is seen at once).
  absl::Duration interval = absl::Seconds(1);
  // Stop after this long.
  absl::Duration timeout = absl::InfiniteDuration();
};

// Runs until every task of `command.ids` has ended (exit code 0, or 3 if one
// did not succeed), or until `command.timeout` passes (4 with ids if one has
// not ended; 0 with filters, which otherwise run until interrupted). An id
// the server does not know, or a failed RPC, is reported on stderr and
// makes the exit code 1.
int RunWatch(Client& client, const WatchCommand& command, WatchDisplay display);

}  // namespace remex::cli

#endif  // REMEX_CLI_WATCH_H_
