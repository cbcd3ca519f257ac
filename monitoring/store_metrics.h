// The store metrics: how a durable store (--store postgresql://...) commits,
// claims, re-queues, fails and reconnects.
#ifndef REMEX_MONITORING_STORE_METRICS_H_
#define REMEX_MONITORING_STORE_METRICS_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/executor/store.h"

namespace remex::monitoring {

// Implements the executor's StoreObserver with remex_store_commit_seconds,
// remex_store_commit_batch_tasks, remex_store_claim_lag_seconds,
// remex_store_requeued_tasks_total, remex_store_errors_total{operation},
// remex_store_reconnects_total, remex_store_can_commit, and for replicas
// sharing a store remex_store_replicas_live, remex_store_replicas_lost_total,
// remex_store_replica_silence_seconds (how long a lost replica's heartbeat
// was silent when it was found: the detection time),
// remex_store_lost_replica_tasks_total (their tasks that ended rather than
// run again), remex_store_replica_lease_seconds and
// remex_store_heartbeat_interval_seconds.
//
// remex_store_can_commit starts at 1: the memory store always commits, and
// a durable store is connected when the server starts (it refuses to start
// otherwise) and reports every change after. The errors of the operations
// a store names in store.h ("commit", "read", "connect", "retention") are
// exported at 0 from the start, so that rate() sees their first error.
//
// Thread-safe; no call waits on more than a metric's own short lock. Does
// not own the registry, which must outlive it.
class StoreMetrics final : public executor::StoreObserver {
 public:
  explicit StoreMetrics(prometheus::Registry& registry);

  void OnCommit(size_t tasks, absl::Duration latency) override;
  void OnDatabaseError(absl::string_view operation) override;
  void OnReconnect() override;
  void OnRequeued(int64_t tasks) override;
  void OnClaimLag(absl::Duration lag) override;
  void OnCanCommit(bool can_commit) override;
  void OnLiveReplicas(int64_t replicas) override;
  void OnReplicaLost(absl::Duration silent_for, int64_t lost_tasks) override;

  // The lease and heartbeat period the server's store uses.
  void SetLease(absl::Duration lease, absl::Duration heartbeat_interval);

 private:
  prometheus::Histogram& commit_seconds_;
  prometheus::Histogram& commit_batch_tasks_;
  prometheus::Histogram& claim_lag_seconds_;
  prometheus::Counter& requeued_;
  prometheus::Family<prometheus::Counter>& errors_;
  // The children of errors_ for the operations named in store.h, in the
  // order of kOperations in the .cc.
  std::array<prometheus::Counter*, 8> known_errors_;
  prometheus::Counter& reconnects_;
  prometheus::Gauge& can_commit_;
  prometheus::Gauge& replicas_live_;
  prometheus::Counter& replicas_lost_;
  prometheus::Histogram& replica_silence_seconds_;
  prometheus::Counter& lost_replica_tasks_;
  prometheus::Gauge& lease_seconds_;
  prometheus::Gauge& heartbeat_interval_seconds_;
};

}  // namespace remex::monitoring

#endif  // REMEX_MONITORING_STORE_METRICS_H_
