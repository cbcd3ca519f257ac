// remex-server as a child process of remex-bench, and what /proc says about
// a server process.
#ifndef REMEX_BENCHMARKS_SERVER_CHILD_H_
#define REMEX_BENCHMARKS_SERVER_CHILD_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace remex::bench {

// Threads and resident memory of a process, from /proc/<pid>/status.
struct ProcessUsage {
  int threads = 0;
  int64_t rss_bytes = 0;
};
absl::StatusOr<ProcessUsage> ReadProcessUsage(pid_t pid);

// The value of the sample `name` (a full sample name, such as
// "remex_store_commit_batch_tasks_count", without labels) on the
// Prometheus text page at http://`address`/metrics.
absl::StatusOr<double> ScrapeMetric(const std::string& address,
                                    const std::string& name);

// Owns one server process started as `binary --listen 127.0.0.1:0 args...`.
// Start() returns once the server printed `listening on ADDRESS`; a thread
// keeps draining its output (the last lines are kept for error messages).
// The destructor sends SIGTERM, waits up to 10 s, then SIGKILLs it.
//
// Thread-compatible.
class ServerChild {
 public:
  static absl::StatusOr<std::unique_ptr<ServerChild>> Start(
      const std::string& binary, const std::vector<std::string>& args);
  ~ServerChild();
  ServerChild(const ServerChild&) = delete;
  ServerChild& operator=(const ServerChild&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // The last lines the server printed.
  std::string RecentOutput() const;
  // The address after "metrics listening on" in the server's output, once
  // printed (waits up to `timeout`).
  absl::StatusOr<std::string> MetricsAddress(absl::Duration timeout) const;

 private:
  ServerChild(pid_t pid, int output_fd);
  void ReadOutput();

  const pid_t pid_;
  const int output_fd_;
  std::string address_;
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  std::string partial_ ABSL_GUARDED_BY(mu_);
  size_t total_lines_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

}  // namespace remex::bench

#endif  // REMEX_BENCHMARKS_SERVER_CHILD_H_
