// Figures read at scrape time: pool occupancy, worker restarts, retained
// tasks and parked Awaits.
#ifndef REMEX_MONITORING_STATS_COLLECTOR_H_
#define REMEX_MONITORING_STATS_COLLECTOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/executor/memory_budget.h"
#include "server/executor/pool.h"

namespace remex::monitoring {

// What the server reports at one moment.
struct ServerStats {
  std::vector<executor::PoolStats> pools;
  size_t retained_tasks = 0;
  int64_t awaiters = 0;
  int64_t open_sessions = 0;
  // When these figures were read (for the age of the oldest queued task).
  absl::Time now = absl::InfinitePast();
  // How long an idle client connection is kept (--max-connection-idle);
  // zero: forever.
  absl::Duration max_connection_idle = absl::ZeroDuration();
  // The memory budget (--memory-budget) and the bytes held against it.
  executor::MemoryUse memory;
  // Client connections (see server/connection_guard.h).
  struct Connections {
    // Established now; -1: unknown.
    int64_t open = -1;
    // Connections keep below this fd (0: no guard), keeping `fd_reserve`
    // fds for pools and commands.
    int64_t limit = 0;
    int64_t fd_reserve = 0;
    // Refused at the limit, or for want of fds.
    int64_t refused = 0;
  };
  Connections connections;
};

// Reads the server's figures; called on the exposer's threads, so it must
// be thread-safe and must not block.
using StatsSource = std::function<ServerStats()>;

// A Collectable that asks its source for the figures at every scrape, so
// that nothing is pushed from the hot path: remex_pool_queue_depth,
// remex_pool_queue_capacity, remex_pool_running, remex_pool_workers,
// remex_worker_restarts_total, remex_tasks_retained, remex_awaiters,
// remex_max_connection_idle_seconds, remex_memory_budget_bytes,
// remex_memory_used_bytes, remex_memory_rejected_total,
// remex_connections_open, remex_connections_limit,
// remex_connections_refused_total, remex_fd_reserve. (The open files and
// their limit are process_open_fds and process_max_fds, see ProcessCollector.)
//
// Thread-safe.
class StatsCollector final : public prometheus::Collectable {
 public:
  // Replaces the source; null: nothing to report. After it returns, the old
  // source is no longer called.
  void SetSource(StatsSource source) ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<prometheus::MetricFamily> Collect() const override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  StatsSource source_ ABSL_GUARDED_BY(mu_);
};

// The families of `stats` in exposition form (what Collect() returns).
std::vector<prometheus::MetricFamily> StatsFamilies(const ServerStats& stats);

}  // namespace remex::monitoring

#endif  // REMEX_MONITORING_STATS_COLLECTOR_H_
