// The task metrics: what arrives, how it ends, how long it waits and runs,
// per pool and registered function.
#ifndef REMEX_MONITORING_TASK_METRICS_H_
#define REMEX_MONITORING_TASK_METRICS_H_

#include <array>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/executor/task_observer.h"

namespace remex::monitoring {

// Bounds of the time histograms, in seconds: 100 µs to 1 h.
const prometheus::Histogram::BucketBoundaries& SecondsBuckets();

// Implements the executor's TaskObserver with remex_tasks_submitted_total,
// remex_tasks_rejected_total, remex_tasks_completed_total,
// remex_task_queue_seconds and remex_task_run_seconds. Every labelled child
// is made once (in AddSeries, or at the first rejection of a pool) and kept:
// a task's events only touch counters it already points to.
//
// Thread-safe. Does not own the registry, which must outlive it.
class TaskMetrics final : public executor::TaskObserver {
 public:
  explicit TaskMetrics(prometheus::Registry& registry);

  std::unique_ptr<executor::TaskSeries> AddSeries(
      const std::string& pool, const std::string& function) override;
  void OnRejected(const std::string& pool,
                  executor::RejectReason reason) override;

 private:
  // The children labelled with one pool alone.
  struct PoolChildren {
    prometheus::Histogram* queue_seconds;
    // Indexed by RejectReason.
    std::array<prometheus::Counter*, 4> rejected;
  };
  PoolChildren& ChildrenOf(const std::string& pool) ABSL_LOCKS_EXCLUDED(mu_);

  prometheus::Family<prometheus::Counter>& submitted_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& completed_;
  prometheus::Family<prometheus::Histogram>& queue_seconds_;
  prometheus::Family<prometheus::Histogram>& run_seconds_;

  absl::Mutex mu_;
  // Never erased, so the references handed out stay valid.
  absl::flat_hash_map<std::string, std::unique_ptr<PoolChildren>> pools_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace remex::monitoring

#endif  // REMEX_MONITORING_TASK_METRICS_H_
