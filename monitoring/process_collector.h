// The standard process_* metrics of the server process, read from
// /proc/self at scrape time (prometheus-cpp 1.0 has no process collector).
#ifndef REMEX_MONITORING_PROCESS_COLLECTOR_H_
#define REMEX_MONITORING_PROCESS_COLLECTOR_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace remex::monitoring {

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds and process_threads, named as the Go and Python
// clients name them so that standard dashboards work. A figure that cannot be
// read is left out.
//
// Thread-safe (stateless).
class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace remex::monitoring

#endif  // REMEX_MONITORING_PROCESS_COLLECTOR_H_
