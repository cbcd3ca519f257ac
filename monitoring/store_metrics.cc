#include "monitoring/store_metrics.h"

#include <string>

#include "monitoring/task_metrics.h"

namespace remex::monitoring {
namespace {

// What store.h says a store names in OnDatabaseError.
constexpr absl::string_view kOperations[] = {
    "commit",    "read",  "connect", "retention",
    "heartbeat", "lease", "claim",   "listen"};

// A durable commit costs at least one fdatasync (about 0.5 ms on a local
// disk): 100 µs to 1 s.
const prometheus::Histogram::BucketBoundaries& CommitBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,  0.05,    0.1,    0.25,  0.5,    1};
  return *kBuckets;
}

// Tasks written by one transaction (group commit): 1 to 4096, powers of 2.
const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* const kBuckets = [] {
    auto* buckets = new prometheus::Histogram::BucketBoundaries;
    for (double tasks = 1; tasks <= 4096; tasks *= 2) {
      buckets->push_back(tasks);
    }
    return buckets;
  }();
  return *kBuckets;
}

prometheus::Histogram& AddHistogram(
    prometheus::Registry& registry, const std::string& name,
    const std::string& help,
    const prometheus::Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({}, buckets);
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry,
                            const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(
      {});
}

// How long a lost replica was silent: about a lease (seconds) and more.
const prometheus::Histogram::BucketBoundaries& SilenceBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{1,  2,  5,   10,  15, 20,
                                                  30, 60, 120, 300, 600};
  return *kBuckets;
}

prometheus::Counter& AddCounter(prometheus::Registry& registry,
                                const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({});
}

}  // namespace

StoreMetrics::StoreMetrics(prometheus::Registry& registry)
    : commit_seconds_(AddHistogram(
          registry, "remex_store_commit_seconds",
          "Time from the first write of a store transaction being handed to "
          "the store to its commit.",
          CommitBuckets())),
      commit_batch_tasks_(AddHistogram(
          registry, "remex_store_commit_batch_tasks",
          "Task writes (inserts and updates) per committed store transaction "
          "(group commit).",
          BatchBuckets())),
      claim_lag_seconds_(AddHistogram(
          registry, "remex_store_claim_lag_seconds",
          "Time from a queued task's commit to it becoming runnable.",
          SecondsBuckets())),
      requeued_(AddCounter(
          registry, "remex_store_requeued_tasks_total",
          "Tasks found running at start or on a lost replica and queued "
          "again.")),
      errors_(prometheus::BuildCounter()
                  .Name("remex_store_errors_total")
                  .Help("Failed store statements or connections, by "
                        "operation (commit, read, connect, retention, "
                        "heartbeat, lease, claim, listen).")
                  .Register(registry)),
      reconnects_(AddCounter(
          registry, "remex_store_reconnects_total",
          "Times the store connected again after losing its database.")),
      can_commit_(prometheus::BuildGauge()
                      .Name("remex_store_can_commit")
                      .Help("1 while the store can commit, 0 while its "
                            "database is away (submits are refused "
                            "UNAVAILABLE).")
                      .Register(registry)
                      .Add({})),
      replicas_live_(AddGauge(
          registry, "remex_store_replicas_live",
          "Replicas sharing the store whose heartbeat is within the lease, "
          "this one included.")),
      replicas_lost_(AddCounter(
          registry, "remex_store_replicas_lost_total",
          "Replicas found lost (heartbeat older than the lease) by this "
          "replica, whose tasks it queued again.")),
      replica_silence_seconds_(AddHistogram(
          registry, "remex_store_replica_silence_seconds",
          "How long a lost replica's heartbeat had been silent when it was "
          "found lost: the time to detect a lost replica.",
          SilenceBuckets())),
      lost_replica_tasks_(AddCounter(
          registry, "remex_store_lost_replica_tasks_total",
          "Tasks of lost replicas that ended (WORKER_LOST with their "
          "attempts spent, or CANCELLED when a cancel was asked) rather than "
          "run again.")),
      lease_seconds_(
          AddGauge(registry, "remex_store_replica_lease_seconds",
                   "A replica whose heartbeat is older than this is lost "
                   "(--replica-lease).")),
      heartbeat_interval_seconds_(
          AddGauge(registry, "remex_store_heartbeat_interval_seconds",
                   "How often this replica writes its heartbeat.")) {
  for (size_t i = 0; i < known_errors_.size(); ++i) {
    known_errors_[i] =
        &errors_.Add({{"operation", std::string(kOperations[i])}});
  }
  can_commit_.Set(1);
  replicas_live_.Set(1);
}

void StoreMetrics::OnCommit(size_t tasks, absl::Duration latency) {
  commit_seconds_.Observe(absl::ToDoubleSeconds(latency));
  commit_batch_tasks_.Observe(static_cast<double>(tasks));
}

void StoreMetrics::OnDatabaseError(absl::string_view operation) {
  for (size_t i = 0; i < known_errors_.size(); ++i) {
    if (operation == kOperations[i]) {
      known_errors_[i]->Increment();
      return;
    }
  }
  // Another name: the family's own lock makes (or finds) its child.
  errors_.Add({{"operation", std::string(operation)}}).Increment();
}

void StoreMetrics::OnReconnect() { reconnects_.Increment(); }

void StoreMetrics::OnRequeued(int64_t tasks) {
  if (tasks > 0) requeued_.Increment(static_cast<double>(tasks));
}

void StoreMetrics::OnClaimLag(absl::Duration lag) {
  claim_lag_seconds_.Observe(absl::ToDoubleSeconds(lag));
}

void StoreMetrics::OnCanCommit(bool can_commit) {
  can_commit_.Set(can_commit ? 1 : 0);
}

void StoreMetrics::OnLiveReplicas(int64_t replicas) {
  replicas_live_.Set(static_cast<double>(replicas));
}

void StoreMetrics::OnReplicaLost(absl::Duration silent_for,
                                 int64_t lost_tasks) {
  replicas_lost_.Increment();
  replica_silence_seconds_.Observe(absl::ToDoubleSeconds(silent_for));
  if (lost_tasks > 0)
    lost_replica_tasks_.Increment(static_cast<double>(lost_tasks));
}

void StoreMetrics::SetLease(absl::Duration lease,
                            absl::Duration heartbeat_interval) {
  lease_seconds_.Set(absl::ToDoubleSeconds(lease));
  heartbeat_interval_seconds_.Set(absl::ToDoubleSeconds(heartbeat_interval));
}

}  // namespace remex::monitoring
