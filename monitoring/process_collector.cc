#include "monitoring/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace remex::monitoring {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The fields of /proc/self/stat that follow the command name, which may hold
// spaces and parentheses: field 3 (state) is element 0.
std::optional<std::vector<std::string>> StatFields() {
  std::ifstream file("/proc/self/stat");
  std::stringstream text;
  text << file.rdbuf();
  const std::string stat = text.str();
  const size_t end_of_name = stat.rfind(')');
  if (end_of_name == std::string::npos) return std::nullopt;
  return absl::StrSplit(absl::string_view(stat).substr(end_of_name + 1), ' ',
                        absl::SkipEmpty());
}

// Element of StatFields() holding field `number` of proc(5).
std::optional<double> StatField(const std::vector<std::string>& fields,
                                int number) {
  const size_t index = static_cast<size_t>(number - 3);
  double value = 0;
  if (index >= fields.size() || !absl::SimpleAtod(fields[index], &value)) {
    return std::nullopt;
  }
  return value;
}

// Seconds since the epoch at which the machine booted (btime in /proc/stat).
std::optional<double> BootTime() {
  std::ifstream file("/proc/stat");
  std::string key;
  double value = 0;
  while (file >> key) {
    if (key == "btime" && file >> value) return value;
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::optional<double> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory being read
}

void Add(std::vector<MetricFamily>& families, std::string name,
         std::string help, MetricType type, std::optional<double> value) {
  if (!value.has_value()) return;
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = *value;
  } else {
    metric.gauge.value = *value;
  }
  families.push_back(MetricFamily{.name = std::move(name),
                                  .help = std::move(help),
                                  .type = type,
                                  .metric = {std::move(metric)}});
}

}  // namespace

std::vector<MetricFamily> ProcessCollector::Collect() const {
  std::vector<MetricFamily> families;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page_bytes = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (std::optional<std::vector<std::string>> stat = StatFields()) {
    const std::optional<double> utime = StatField(*stat, 14);
    const std::optional<double> stime = StatField(*stat, 15);
    if (utime.has_value() && stime.has_value()) {
      Add(families, "process_cpu_seconds_total",
          "Total user and system CPU time spent in seconds.",
          MetricType::Counter, (*utime + *stime) / ticks);
    }
    if (std::optional<double> rss = StatField(*stat, 24)) {
      Add(families, "process_resident_memory_bytes",
          "Resident memory size in bytes.", MetricType::Gauge,
          *rss * page_bytes);
    }
    Add(families, "process_virtual_memory_bytes",
        "Virtual memory size in bytes.", MetricType::Gauge,
        StatField(*stat, 23));
    Add(families, "process_threads", "Number of OS threads in the process.",
        MetricType::Gauge, StatField(*stat, 20));
    const std::optional<double> start = StatField(*stat, 22);
    const std::optional<double> boot = BootTime();
    if (start.has_value() && boot.has_value()) {
      Add(families, "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds.",
          MetricType::Gauge, *boot + *start / ticks);
    }
  }
  Add(families, "process_open_fds", "Number of open file descriptors.",
      MetricType::Gauge, OpenFds());
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    Add(families, "process_max_fds", "Maximum number of open file descriptors.",
        MetricType::Gauge, static_cast<double>(limit.rlim_cur));
  }
  return families;
}

}  // namespace remex::monitoring
