// The server's configuration: built-in defaults, a JSON or YAML file, flags.
#ifndef REMEX_SERVER_CONFIG_H_
#define REMEX_SERVER_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "server/executor/executor.h"
#include "server/functions/command_function.h"

namespace remex::server {

struct ServerConfig {
  // Loopback unless set: a server that anyone may use (no auth, no mTLS)
  // must not be reachable from the network by default.
  std::string listen = "127.0.0.1:50051";
  // Where Prometheus scrapes /metrics (HOST:PORT); empty: no metrics.
  std::string metrics_listen = "127.0.0.1:9464";
  // The auth file (see server/auth/principals.h); empty: none.
  std::string auth_file;
  // Serve a non-loopback address without auth or mTLS (protected mode off).
  bool insecure = false;
  executor::ExecutorOptions executor;
  // Completion queues, each with one poller thread; 0: one per core.
  int pollers = 0;
  // A client connection with no call for this long is closed (its fd and
  // memory freed); zero: never.
  absl::Duration max_connection_idle = absl::Minutes(5);
  // How long running tasks may go on after SIGTERM before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(10);
  bool enable_test_functions = false;
  // Shared libraries of functions to load at start (see remex/plugin.h):
  // the config's, then those of --plugin.
  std::vector<std::string> plugins;
  // Functions that run an executable (see command_function.h).
  std::vector<functions::CommandFunctionConfig> command_functions;
  // TLS (see auth/tls.h): PEM files of the server's certificate chain and
  // key; empty: plaintext. With a client CA, clients must present a
  // certificate it signed (mTLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Where tasks live: "memory" (this process's task table) or a libpq
  // connection string (a postgresql:// or postgres:// URI, or key=value
  // pairs) of the PostgreSQL store. See ResolveStoreConfig.
  std::string store = "memory";
  // This replica's name among those that share a store; empty until
  // ResolveStoreConfig sets it (default: the host name).
  std::string replica_name;
  // A replica whose heartbeat is older than this is lost, and its tasks are
  // run again elsewhere; each writes its heartbeat every lease / 5.
  absl::Duration replica_lease = absl::Seconds(10);
  // The event log on stderr (common/log.h): text or JSON lines, and the
  // least level written.
  log::Format log_format = log::Format::kText;
  log::Level log_level = log::Level::kInfo;
};

// The embedded defaults: a thread pool "default" and a process pool
// "process" (one worker per core), and a memory budget of half the memory
// the process may use (DefaultMemoryBudget), sized to the machine.
ServerConfig DefaultConfig();

// The memory this process may use: its cgroup's limit (v2 memory.max, v1
// memory.limit_in_bytes) when one is set below the machine's memory, else
// the machine's (MemTotal of /proc/meminfo); 0 if neither can be read.
// `root` is where / is (tests pass a directory of such files).
size_t AvailableMemoryBytes(const std::string& root = "/");

// The default memory budget: half of AvailableMemoryBytes() (the other
// half is for gRPC's buffers, the copies a request makes while it is
// parsed and mapped, and the process itself), at least 64 MiB; 1 GiB if
// the memory cannot be read.
size_t DefaultMemoryBudget(size_t available_bytes);

// "1073741824", "512MiB", "2GiB", "1.5GiB", "512Mi" (Kubernetes style), or
// with KiB/Ki, TiB/Ti; INVALID_ARGUMENT for anything else or zero.
absl::StatusOr<size_t> ParseByteSize(absl::string_view text);

// Reads a config file (JSON or YAML; JSON is read as YAML) over `base`:
//   pools: [{name, kind: thread|process, workers, max_queue}]  (replaces all)
//     process pools also: cancel_grace (duration), memory_limit_bytes,
//     cpu_limit_seconds (per task), max_open_files, max_tasks_per_worker
//     (each refused on a thread pool)
//   retention: {ttl: "10m", max_tasks: N, max_bytes: N}
//   memory_budget: "2GiB"  (or bytes; see ParseByteSize)
//   shutdown_grace: "10s"
//   max_connection_idle: "5m"  (0: never)
//   pollers: N
//   plugins: [PATH.so, ...]  (relative paths: to `config_dir`)
//   auth: PATH  (the auth file; relative to `config_dir`)
//   insecure: true|false
//   tls_cert: FILE, tls_key: FILE, tls_client_ca: FILE  (relative paths: to
//     `config_dir`)
//   store: memory|URL  (checked by ResolveStoreConfig, once flags and
//     environment have had their say)
//   replica_name: NAME
//   replica_lease: "10s"  (at least 1s)
//   log_format: text|json
//   log_level: debug|info|warn|error
//   functions: [{name, description, command: [EXECUTABLE, ARG, ...], pool,
//                run_timeout, cancel_grace, env: {NAME: VALUE},
//                working_dir, max_output_bytes}]  (command functions)
// Durations are strings like "500ms", "10s", "2m" or numbers of seconds.
// Unknown keys and bad values are INVALID_ARGUMENT naming the key.
absl::StatusOr<ServerConfig> ParseConfig(absl::string_view text,
                                         ServerConfig base,
                                         absl::string_view config_dir = "");
// Plugin and TLS paths in the file are relative to the file's directory.
absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path,
                                            ServerConfig base);

// INVALID_ARGUMENT unless the TLS settings make sense together (after flags
// override the file): a certificate and its key both or neither, a client
// CA only with them. The files themselves are checked at start.
absl::Status CheckTlsConfig(const ServerConfig& config);

// What the command line says about the store (unset: not given).
struct StoreFlags {
  std::optional<std::string> store;             // --store
  std::optional<std::string> replica_name;      // --replica-name
  std::optional<absl::Duration> replica_lease;  // --replica-lease
};

// Settles the store settings of `config` (as read from the file) with the
// flags and the environment: the store comes from --store, else
// $REMEX_STORE (`env_store`; null or empty: unset), else the file, else
// "memory"; the replica name from --replica-name, else the file, else the
// host name. INVALID_ARGUMENT, in one line naming the flag, for a store that
// is neither "memory" nor a connection string libpq accepts (with libpq's
// reason), an empty replica name, or a lease under a second (the lease from
// --replica-lease, else the file).
absl::Status ResolveStoreConfig(const StoreFlags& flags, const char* env_store,
                                ServerConfig& config);

}  // namespace remex::server

#endif  // REMEX_SERVER_CONFIG_H_
