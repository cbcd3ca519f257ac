#include "monitoring/stats_collector.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

namespace remex::monitoring {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Reasons a process pool always reports, so that their series exist (at 0)
// before the first restart.
constexpr const char* kRestartReasons[] = {"crash", "cancel", "timeout",
                                           "recycle"};

MetricFamily Family(std::string name, std::string help, MetricType type) {
  return MetricFamily{
      .name = std::move(name), .help = std::move(help), .type = type};
}

void AddGauge(MetricFamily& family, std::vector<ClientMetric::Label> labels,
              double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

void AddCounter(MetricFamily& family, std::vector<ClientMetric::Label> labels,
                double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  family.metric.push_back(std::move(metric));
}

}  // namespace

std::vector<MetricFamily> StatsFamilies(const ServerStats& stats) {
  MetricFamily depth =
      Family("remex_pool_queue_depth", "Tasks waiting in the pool's queue.",
             MetricType::Gauge);
  MetricFamily oldest = Family(
      "remex_pool_oldest_queued_seconds",
      "How long the pool's longest-waiting queued task has waited since it "
      "was submitted; 0 when none waits.",
      MetricType::Gauge);
  MetricFamily capacity = Family(
      "remex_pool_queue_capacity",
      "Tasks the pool's queue holds before submits are refused (max_queue).",
      MetricType::Gauge);
  MetricFamily running = Family(
      "remex_pool_running", "Tasks running in the pool.", MetricType::Gauge);
  MetricFamily workers =
      Family("remex_pool_workers", "The pool's workers, by state (idle, busy).",
             MetricType::Gauge);
  MetricFamily restarts =
      Family("remex_worker_restarts_total",
             "Process pool workers replaced, by pool and reason (crash, "
             "cancel, timeout, recycle).",
             MetricType::Counter);
  for (const executor::PoolStats& pool : stats.pools) {
    const ClientMetric::Label pool_label{"pool", pool.name};
    AddGauge(depth, {pool_label}, static_cast<double>(pool.queued));
    AddGauge(capacity, {pool_label}, static_cast<double>(pool.max_queue));
    AddGauge(
        oldest, {pool_label},
        pool.oldest_queued_created_at >= stats.now
            ? 0.0
            : absl::ToDoubleSeconds(stats.now - pool.oldest_queued_created_at));
    AddGauge(running, {pool_label}, pool.busy);
    AddGauge(workers, {pool_label, {"state", "busy"}}, pool.busy);
    AddGauge(workers, {pool_label, {"state", "idle"}},
             std::max(0, pool.workers - pool.busy));
    if (pool.kind != executor::PoolKind::kProcess) continue;
    std::map<std::string, int64_t> by_reason = pool.worker_restarts;
    for (const char* reason : kRestartReasons) by_reason.try_emplace(reason, 0);
    for (const auto& [reason, count] : by_reason) {
      AddCounter(restarts, {pool_label, {"reason", reason}},
                 static_cast<double>(count));
    }
  }
  MetricFamily retained =
      Family("remex_tasks_retained",
             "Finished tasks kept (for Get and Await) within their "
             "retention.",
             MetricType::Gauge);
  AddGauge(retained, {}, static_cast<double>(stats.retained_tasks));
  MetricFamily awaiters =
      Family("remex_awaiters", "Await calls parked until their task ends.",
             MetricType::Gauge);
  AddGauge(awaiters, {}, static_cast<double>(stats.awaiters));
  MetricFamily sessions = Family(
      "remex_sessions_open", "Session streams open now.", MetricType::Gauge);
  AddGauge(sessions, {}, static_cast<double>(stats.open_sessions));
  MetricFamily idle = Family(
      "remex_max_connection_idle_seconds",
      "How long a client connection with no call is kept before the server "
      "closes it (--max-connection-idle); 0: forever.",
      MetricType::Gauge);
  AddGauge(idle, {}, absl::ToDoubleSeconds(stats.max_connection_idle));
  MetricFamily budget =
      Family("remex_memory_budget_bytes",
             "Bytes the tasks held here may take, queued, running and "
             "finished (--memory-budget).",
             MetricType::Gauge);
  AddGauge(budget, {}, static_cast<double>(stats.memory.limit));
  MetricFamily used = Family(
      "remex_memory_used_bytes",
      "Bytes held against the memory budget, by part: queued and running "
      "tasks (their args, input and labels) and retained finished ones "
      "(with their results).",
      MetricType::Gauge);
  AddGauge(used, {{"part", "queued"}},
           static_cast<double>(stats.memory.queued));
  AddGauge(used, {{"part", "running"}},
           static_cast<double>(stats.memory.running));
  AddGauge(used, {{"part", "retained"}},
           static_cast<double>(stats.memory.retained));
  MetricFamily rejected = Family(
      "remex_memory_rejected_total",
      "Submits refused RESOURCE_EXHAUSTED because the task did not fit the "
      "memory budget.",
      MetricType::Counter);
  AddCounter(rejected, {}, static_cast<double>(stats.memory.rejected));

  const ServerStats::Connections& connections = stats.connections;
  MetricFamily open =
      Family("remex_connections_open", "Client connections established now.",
             MetricType::Gauge);
  if (connections.open >= 0) {
    AddGauge(open, {}, static_cast<double>(connections.open));
  }
  MetricFamily limit = Family(
      "remex_connections_limit",
      "Client connections hold file descriptors below this number (the soft "
      "limit of open files less the reserve); past it they are refused.",
      MetricType::Gauge);
  MetricFamily reserve = Family(
      "remex_fd_reserve",
      "File descriptors kept free of client connections, for pool workers, "
      "commands and the store.",
      MetricType::Gauge);
  MetricFamily refused = Family(
      "remex_connections_refused_total",
      "Client connections closed as soon as accepted: past the limit, or "
      "when the process had no file descriptor left.",
      MetricType::Counter);
  if (connections.limit > 0) {
    AddGauge(limit, {}, static_cast<double>(connections.limit));
    AddGauge(reserve, {}, static_cast<double>(connections.fd_reserve));
    AddCounter(refused, {}, static_cast<double>(connections.refused));
  }

  std::vector<MetricFamily> families;
  for (MetricFamily* family :
       {&depth, &oldest, &capacity, &running, &workers, &restarts, &retained,
        &awaiters, &sessions, &idle, &budget, &used, &rejected, &open, &limit,
        &reserve, &refused}) {
    // A family with no sample (no process pool) is left out.
    if (!family->metric.empty()) families.push_back(std::move(*family));
  }
  return families;
}

void StatsCollector::SetSource(StatsSource source) {
  absl::MutexLock lock(&mu_);
  source_ = std::move(source);
}

std::vector<MetricFamily> StatsCollector::Collect() const {
  absl::MutexLock lock(&mu_);
  if (!source_) return {};
  return StatsFamilies(source_());
}

}  // namespace remex::monitoring
