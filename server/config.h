// The server's configuration: built-in defaults, a JSON or YAML file, flags.
#ifndef REMEX_SERVER_CONFIG_H_
#define REMEX_SERVER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/executor/executor.h"

namespace remex::server {

struct ServerConfig {
  std::string listen = "0.0.0.0:50051";
  // Where Prometheus scrapes /metrics (HOST:PORT); empty: no metrics.
  std::string metrics_listen = "0.0.0.0:9464";
  executor::ExecutorOptions executor;
  // Completion queues, each with one poller thread; 0: one per core.
  int pollers = 0;
  // How long running tasks may go on after SIGTERM before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(10);
  bool enable_test_functions = false;
};

// The embedded defaults: a thread pool "default" sized to the machine.
ServerConfig DefaultConfig();

// Reads a config file (JSON or YAML; JSON is read as YAML) over `base`:
//   pools: [{name, kind: thread|process, workers, max_queue}]  (replaces all)
//   retention: {ttl: "10m", max_tasks: N, max_bytes: N}
//   shutdown_grace: "10s"
//   pollers: N
// Durations are strings like "500ms", "10s", "2m" or numbers of seconds.
// Unknown keys and bad values are INVALID_ARGUMENT naming the key.
absl::StatusOr<ServerConfig> ParseConfig(absl::string_view text,
                                         ServerConfig base);
absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path,
                                            ServerConfig base);

}  // namespace remex::server

#endif  // REMEX_SERVER_CONFIG_H_
