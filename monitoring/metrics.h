// The server's metrics and the HTTP endpoint that serves them to Prometheus.
#ifndef REMEX_MONITORING_METRICS_H_
#define REMEX_MONITORING_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "monitoring/grpc_metrics.h"
#include "monitoring/stats_collector.h"
#include "monitoring/store_metrics.h"
#include "monitoring/task_metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace remex::monitoring {

struct BuildInfo {
  std::string version;
  std::string revision;
};

// Every metric of a remex server: the task metrics (hand tasks() to the
// executor as its observer), the store metrics (hand store() to a durable
// store), the gRPC metrics, remex_build_info, the figures
// read at scrape time (SetStatsSource) and the process metrics.
//
// Thread-safe. Must outlive the executor and RPC server that report to it
// and every MetricsServer that serves it.
class Metrics {
 public:
  explicit Metrics(const BuildInfo& build);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  executor::TaskObserver& tasks() { return tasks_; }
  StoreMetrics& store() { return store_; }
  GrpcMetrics& grpc() { return grpc_; }

  // Where the scrape-time figures come from; null stops asking (call it
  // before what the source reads goes away).
  void SetStatsSource(StatsSource source) {
    stats_->SetSource(std::move(source));
  }

  // What an endpoint serves.
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables() const;

  // Everything in the Prometheus text format, as a scrape would get it.
  std::string Scrape() const;

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::shared_ptr<StatsCollector> stats_;
  const std::shared_ptr<prometheus::Collectable> process_;
  TaskMetrics tasks_;
  StoreMetrics store_;
  GrpcMetrics grpc_;
};

// An HTTP server (prometheus-cpp's exposer) answering GET /metrics.
//
// Thread-safe. Does not own the metrics, which must outlive it.
class MetricsServer {
 public:
  // Serves `metrics` on `listen` (HOST:PORT; port 0 picks a free port).
  // UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, const Metrics& metrics);
  ~MetricsServer();

  int port() const { return port_; }
  // The listen host with the real port, e.g. "127.0.0.1:40123".
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::string address_;
};

}  // namespace remex::monitoring

#endif  // REMEX_MONITORING_METRICS_H_
