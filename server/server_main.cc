#include "server/server_main.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "monitoring/metrics.h"
#include "server/auth/principals.h"
#include "server/auth/tls.h"
#include "server/config.h"
#include "server/connection_guard.h"
#include "server/executor/executor.h"
#include "server/executor/store.h"
#include "server/logging.h"
#include "server/process/janitor.h"
#include "server/process/process_pool.h"
#include "server/process/worker.h"
#include "server/protected_mode.h"
#include "server/rpc/rpc_server.h"
#include "server/store/postgres/postgres_store.h"

namespace remex::server {
namespace {

constexpr char kUsage[] = R"(usage: remex-server [flags]

Runs registered functions for gRPC clients (service remex.v1.Executor, with
grpc.health.v1.Health and server reflection).

flags:
  --listen HOST:PORT        where to serve gRPC (default 127.0.0.1:50051,
                            or 0.0.0.0:50051 with --auth, --tls-client-ca
                            or --insecure); port 0 picks a free port; the
                            server prints "listening on HOST:PORT" once it
                            serves
  --auth FILE               callers must authenticate: principals with
                            hashed bearer tokens, roles (submit, read,
                            admin), allowed function globs and
                            max_active_tasks (format: README "Security";
                            config key auth). Each task belongs to whoever
                            submitted it; others get NOT_FOUND for it
  --insecure                serve a non-loopback address with neither
                            --auth nor --tls-client-ca: anyone who reaches
                            it can run functions and read every task
                            (config key insecure: true). Without it such a
                            server exits 1
  --metrics-listen HOST:PORT
                            where to serve Prometheus metrics at /metrics
                            (default 127.0.0.1:9464, or 0.0.0.0:9464 when
                            gRPC defaults to 0.0.0.0); port 0 picks a free
                            port; the server prints "metrics listening on
                            HOST:PORT" after the gRPC line; "none" or ""
                            serves no metrics
  --config FILE             JSON or YAML config (default: built in: a thread
                            pool "default" and a process pool "process",
                            both sized to the machine). Keys:
                              pools: [{name, kind: thread|process, workers,
                                       max_queue}]
                                process pools also: cancel_grace: "1s",
                                memory_limit_bytes, cpu_limit_seconds (per
                                task), max_open_files, max_tasks_per_worker
                              retention: {ttl: "10m", max_tasks, max_bytes}
                              memory_budget: "2GiB"
                              shutdown_grace: "10s"
                              max_connection_idle: "5m"
                              pollers: N
                              plugins: [PATH.so, ...]  (relative to the
                                config file's directory)
                              functions: [{name, command: [EXECUTABLE,
                                "{arg}", ...], description, pool,
                                run_timeout, cancel_grace, env, working_dir,
                                max_output_bytes, allow_option_values, user,
                                group}]  (command functions: run
                                EXECUTABLE, no shell, with each {arg}
                                filled from the task's args, stdin = input)
                              store: memory|URL
                              replica_name: NAME
                              replica_lease: DURATION
                              log_format: text|json
                              log_level: debug|info|warn|error
  --store URL               where tasks live: "memory" (the default: in this
                            process; nothing survives a restart) or a
                            PostgreSQL connection URI
                            (postgresql://USER@HOST:PORT/DB?..., or any
                            connection string libpq accepts): tasks survive
                            a crash and replicas share them. Overrides
                            $REMEX_STORE, which overrides config key store.
                            Anything else stops the server (exit 1)
  --replica-name NAME       this server's name among the replicas sharing a
                            store (default: the host name; overrides config
                            key replica_name)
  --replica-lease DURATION  a replica whose heartbeat is older than this is
                            lost: another re-queues its running tasks
                            (default 10s, at least 1s; heartbeats every
                            lease/5; overrides config key replica_lease)
  --shutdown-grace DURATION how long running tasks may go on after SIGTERM
                            or SIGINT before they are cancelled (default 10s;
                            overrides the config)
  --pollers N               completion queues / poller threads (default: one
                            per core; overrides the config)
  --max-connection-idle DURATION
                            closes a client connection that has had no call
                            for this long (default 5m; 0: never;
                            overrides the config)
  --memory-budget SIZE      bytes the tasks held here may take: queued,
                            running and finished ones (512MiB, 2GiB, or a
                            number of bytes). A submit that would pass it
                            fails RESOURCE_EXHAUSTED; finished tasks are
                            forgotten, oldest first, to make room for new
                            ones (default: half the memory of the machine or
                            of the container's cgroup limit; overrides config
                            key memory_budget)
  --plugin PATH.so          loads functions from a shared library built
                            against remex/plugin.h (repeatable; after the
                            config's plugins; PATH relative to the working
                            directory). A plugin that cannot be loaded, was
                            built for another plugin API version or offers
                            a function name already taken stops the server
                            (exit 1)
  --tls-cert FILE           serves TLS with this PEM certificate chain
                            (with --tls-key; overrides config tls_cert)
  --tls-key FILE            the PEM private key of --tls-cert (overrides
                            config tls_key)
  --tls-client-ca FILE      requires client certificates signed by these
                            PEM CAs (mTLS; needs --tls-cert; overrides
                            config tls_client_ca). A file that is missing,
                            unreadable, not PEM, or a key that does not
                            match the certificate stops the server (exit 1)
  --log-format text|json    how the log on stderr is written: one line per
                            event (start, listening, worker started, died
                            or recycled, drain steps, store reconnects,
                            failed authentications, reloads), as text
                            (timestamp, level, event, key=value fields,
                            msg="...") or as one JSON object a line
                            (default text; overrides config key
                            log_format). stdout carries only the two
                            "listening on" lines, in either format
  --log-level debug|info|warn|error
                            the least level logged (default info;
                            overrides config key log_level)
  --enable-test-functions   registers `crash`, which kills the process
                            running it, and `ignore_cancel`, which keeps its
                            worker busy after a cancel (for tests only)
  --version                 prints the version and exits
  --help                    prints this and exits

On SIGHUP the server re-reads the auth file and the TLS files; open
connections and streams stay; a file that does not load is refused with a
log line and the old one kept. SIGPIPE is ignored.

On SIGTERM or SIGINT the server reports NOT_SERVING, refuses new tasks
(UNAVAILABLE), cancels queued tasks, gives running ones the grace period,
cancels what is left, answers every waiting Await, and exits 0 (after at
most 3 s more if a function ignores its cancellation).
)";

// How long, after the drain, worker threads get to return from functions
// that ignore cancellation before the process exits without them.
constexpr absl::Duration kWorkerStopTimeout = absl::Seconds(3);

struct Flags {
  std::optional<std::string> listen;
  std::optional<std::string> metrics_listen;
  std::optional<std::string> config_path;
  std::optional<absl::Duration> shutdown_grace;
  std::optional<int> pollers;
  std::optional<absl::Duration> max_connection_idle;
  std::optional<size_t> memory_budget;
  std::vector<std::string> plugins;
  std::optional<std::string> auth_file;
  bool insecure = false;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_client_ca;
  StoreFlags store;
  std::optional<log::Format> log_format;
  std::optional<log::Level> log_level;
  bool enable_test_functions = false;
  bool help = false;
  bool version = false;
};

// Splits "--name=value" or takes the next argument as the value.
absl::StatusOr<std::string> FlagValue(
    absl::string_view name, std::optional<absl::string_view> inline_value,
    int argc, char** argv, int& i) {
  if (inline_value.has_value()) return std::string(*inline_value);
  if (i + 1 >= argc) {
    return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
  }
  return std::string(argv[++i]);
}

// A flag's value as a duration that is not negative.
absl::StatusOr<absl::Duration> DurationFlagValue(
    absl::string_view name, std::optional<absl::string_view> inline_value,
    int argc, char** argv, int& i) {
  REMEX_ASSIGN_OR_RETURN(const std::string text,
                         FlagValue(name, inline_value, argc, argv, i));
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) ||
      duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": bad duration '", text, "'"));
  }
  return duration;
}

// A flag's value as `parse` reads it; its error names the flag.
template <typename T>
absl::StatusOr<T> ParsedFlagValue(
    absl::string_view name, std::optional<absl::string_view> inline_value,
    int argc, char** argv, int& i,
    absl::StatusOr<T> (*parse)(absl::string_view)) {
  REMEX_ASSIGN_OR_RETURN(const std::string text,
                         FlagValue(name, inline_value, argc, argv, i));
  absl::StatusOr<T> value = parse(text);
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", value.status().message()));
  }
  return value;
}

absl::Status ParseFlag(absl::string_view name,
                       std::optional<absl::string_view> inline_value, int argc,
                       char** argv, int& i, Flags& flags) {
  if (name == "--help" || name == "-h") {
    flags.help = true;
  } else if (name == "--version") {
    flags.version = true;
  } else if (name == "--enable-test-functions") {
    flags.enable_test_functions = true;
  } else if (name == "--insecure") {
    flags.insecure = true;
  } else if (name == "--auth") {
    REMEX_ASSIGN_OR_RETURN(flags.auth_file,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--listen") {
    REMEX_ASSIGN_OR_RETURN(flags.listen,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--plugin") {
    REMEX_ASSIGN_OR_RETURN(flags.plugins.emplace_back(),
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--tls-cert") {
    REMEX_ASSIGN_OR_RETURN(flags.tls_cert,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--tls-key") {
    REMEX_ASSIGN_OR_RETURN(flags.tls_key,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--tls-client-ca") {
    REMEX_ASSIGN_OR_RETURN(flags.tls_client_ca,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--store") {
    REMEX_ASSIGN_OR_RETURN(flags.store.store,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--replica-name") {
    REMEX_ASSIGN_OR_RETURN(flags.store.replica_name,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--replica-lease") {
    REMEX_ASSIGN_OR_RETURN(
        flags.store.replica_lease,
        DurationFlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--metrics-listen") {
    REMEX_ASSIGN_OR_RETURN(flags.metrics_listen,
                           FlagValue(name, inline_value, argc, argv, i));
    if (*flags.metrics_listen == "none") flags.metrics_listen->clear();
  } else if (name == "--config") {
    REMEX_ASSIGN_OR_RETURN(flags.config_path,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--shutdown-grace") {
    REMEX_ASSIGN_OR_RETURN(
        flags.shutdown_grace,
        DurationFlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--max-connection-idle") {
    REMEX_ASSIGN_OR_RETURN(
        flags.max_connection_idle,
        DurationFlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--memory-budget") {
    REMEX_ASSIGN_OR_RETURN(
        flags.memory_budget,
        ParsedFlagValue(name, inline_value, argc, argv, i, ParseByteSize));
  } else if (name == "--log-format") {
    REMEX_ASSIGN_OR_RETURN(
        flags.log_format,
        ParsedFlagValue(name, inline_value, argc, argv, i, log::ParseFormat));
  } else if (name == "--log-level") {
    REMEX_ASSIGN_OR_RETURN(
        flags.log_level,
        ParsedFlagValue(name, inline_value, argc, argv, i, log::ParseLevel));
  } else if (name == "--pollers") {
    REMEX_ASSIGN_OR_RETURN(const std::string text,
                           FlagValue(name, inline_value, argc, argv, i));
    int pollers = 0;
    if (!absl::SimpleAtoi(text, &pollers) || pollers <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--pollers: expected a positive number, got '", text, "'"));
    }
    flags.pollers = pollers;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag '", name, "' (see --help)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    std::optional<absl::string_view> inline_value;
    if (const size_t eq = arg.find('='); eq != absl::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    REMEX_RETURN_IF_ERROR(ParseFlag(arg, inline_value, argc, argv, i, flags));
  }
  return flags;
}

// True when callers must prove who they are (auth file or client
// certificates): only then may the server face the network by default.
bool Authenticates(const ServerConfig& config) {
  return !config.auth_file.empty() || !config.tls_client_ca.empty();
}

absl::StatusOr<ServerConfig> BuildConfig(const Flags& flags) {
  ServerConfig config = DefaultConfig();
  if (flags.config_path.has_value()) {
    REMEX_ASSIGN_OR_RETURN(
        config, LoadConfigFile(*flags.config_path, std::move(config)));
  }
  if (flags.auth_file.has_value()) config.auth_file = *flags.auth_file;
  config.insecure = config.insecure || flags.insecure;
  const bool open_to_network = Authenticates(config) || config.insecure;
  config.listen = flags.listen.value_or(DefaultListen(open_to_network));
  config.metrics_listen =
      flags.metrics_listen.value_or(DefaultMetricsListen(open_to_network));
  if (flags.shutdown_grace.has_value()) {
    config.shutdown_grace = *flags.shutdown_grace;
  }
  if (flags.pollers.has_value()) config.pollers = *flags.pollers;
  if (flags.max_connection_idle.has_value()) {
    config.max_connection_idle = *flags.max_connection_idle;
  }
  if (flags.memory_budget.has_value()) {
    config.executor.memory_budget = *flags.memory_budget;
  }
  if (flags.tls_cert.has_value()) config.tls_cert = *flags.tls_cert;
  if (flags.tls_key.has_value()) config.tls_key = *flags.tls_key;
  if (flags.tls_client_ca.has_value()) {
    config.tls_client_ca = *flags.tls_client_ca;
  }
  REMEX_RETURN_IF_ERROR(CheckTlsConfig(config));
  if (flags.log_format.has_value()) config.log_format = *flags.log_format;
  if (flags.log_level.has_value()) config.log_level = *flags.log_level;
  config.enable_test_functions = flags.enable_test_functions;
  config.plugins.insert(config.plugins.end(), flags.plugins.begin(),
                        flags.plugins.end());
  return config;
}

// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread it
// starts, so that only WaitForStopSignal() receives them, and ignores
// SIGPIPE (a write to a closed socket or pipe is an error, not a death).
sigset_t BlockServerSignals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Returns the first SIGTERM or SIGINT; runs `reload` on each SIGHUP before.
int WaitForStopSignal(const sigset_t& signals,
                      const std::function<void()>& reload) {
  while (true) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal != SIGHUP) return signal;
    reload();
  }
}

// SIGHUP: re-reads the auth file and the TLS files (`tls`, null without
// TLS). New handshakes and calls use them; open connections and streams go
// on. A file that does not load is refused and what was in use stays. One
// line for each.
void ReloadCredentials(const ServerConfig& config,
                       auth::Authenticator& authenticator,
                       auth::ServerTls* tls) {
  if (!config.auth_file.empty()) {
    if (absl::Status status = authenticator.Reload(); !status.ok()) {
      log::Error("config_reload_failed",
                 absl::StrCat("SIGHUP: kept the previous principals: ",
                              status.message()),
                 {{"what", "auth"}, {"file", config.auth_file}});
    } else {
      log::Info("config_reloaded",
                absl::StrCat("SIGHUP: reloaded ", config.auth_file, " (",
                             authenticator.principal_count(), " principals)"),
                {{"what", "auth"},
                 {"file", config.auth_file},
                 {"principals", authenticator.principal_count()}});
    }
  }
  if (tls != nullptr) {
    if (absl::Status status = tls->Reload(); !status.ok()) {
      log::Error("config_reload_failed",
                 absl::StrCat("SIGHUP: kept the previous TLS files: ",
                              status.message()),
                 {{"what", "tls"}});
    } else {
      log::Info("config_reloaded", "SIGHUP: reloaded the TLS files",
                {{"what", "tls"}});
    }
  }
  if (config.auth_file.empty() && tls == nullptr) {
    log::Info("config_reload_skipped",
              "SIGHUP: nothing to reload (no auth file, no TLS)");
  }
}

// Who may call, or an open authenticator when the server lets anyone in.
absl::StatusOr<std::unique_ptr<auth::Authenticator>> MakeAuthenticator(
    const ServerConfig& config) {
  if (!Authenticates(config)) return std::make_unique<auth::Authenticator>();
  return auth::Authenticator::Create(
      config.auth_file,
      /*client_certificates=*/!config.tls_client_ca.empty());
}

// Stops the pools. By now every task is terminal and every RPC answered, but
// a function that ignores its cancellation token keeps its worker thread,
// and so the join, busy: past kWorkerStopTimeout the process exits without
// waiting for it.
void StopExecutor(std::unique_ptr<executor::Executor> executor) {
  absl::Notification stopped;
  std::thread stopper([&executor, &stopped] {
    executor.reset();
    stopped.Notify();
  });
  if (stopped.WaitForNotificationWithTimeout(kWorkerStopTimeout)) {
    stopper.join();
    return;
  }
  log::Warn("drain_abandoned",
            absl::StrCat("workers still busy in functions that ignore "
                         "cancellation after ",
                         absl::FormatDuration(kWorkerStopTimeout),
                         "; exiting without them"),
            {{"waited", kWorkerStopTimeout}, {"exit_code", 0}});
  std::fflush(stderr);
  std::_Exit(0);
}

// The soft limit of open files before and after RaiseOpenFilesLimit.
struct OpenFilesLimit {
  rlim_t before = 0;
  rlim_t now = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit: idle connections, pool
// workers and command pipes all take fds, and the usual soft 1024 locks
// clients out long before the machine runs short.
OpenFilesLimit RaiseOpenFilesLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {};
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (before != limit.rlim_max && setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    limit.rlim_cur = before;
  }
  return {.before = before, .now = limit.rlim_cur};
}

// What the metrics say of client connections (see connection_guard.h).
monitoring::ServerStats::Connections ConnectionsNow(int port) {
  const ConnectionGuardStats guard = GetConnectionGuardStats();
  return {.open = CountEstablishedConnections(port),
          .limit = guard.ceiling,
          .fd_reserve = guard.reserve,
          .refused = guard.refused};
}

// Pool workers in all: what the fd reserve is sized by.
int64_t TotalWorkers(const ServerConfig& config) {
  int64_t workers = 0;
  for (const executor::PoolConfig& pool : config.executor.pools) {
    workers += pool.workers;
  }
  return workers;
}

// The server's TLS material, or null when it serves plaintext.
absl::StatusOr<std::unique_ptr<auth::ServerTls>> LoadServerTls(
    const ServerConfig& config) {
  if (config.tls_cert.empty()) return nullptr;
  return auth::ServerTls::Create({.cert = config.tls_cert,
                                  .key = config.tls_key,
                                  .client_ca = config.tls_client_ca});
}

// How long a server with a durable store may take to stop after its
// grace: the store's drain (5 s) and the executor's end, with room to spare.
constexpr absl::Duration kStoreStopMargin = absl::Seconds(20);

// A database that hangs (its host still acknowledges, so no keepalive
// fires) leaves the store's statements, and the calls waiting on them,
// unanswered, and the drain waits for those calls. Past `limit`, the
// process says so and exits 1 at once: the database holds every task it
// accepted, and the next start recovers them.
void ExitIfStopOutlives(absl::Duration limit) {
  std::thread([limit] {
    absl::SleepFor(limit);
    log::Error("drain_timeout",
               absl::StrCat("still stopping ", absl::FormatDuration(limit),
                            " after the signal (the store's database does "
                            "not answer): exiting; its tasks are recovered "
                            "at the next start"),
               {{"waited", limit}, {"exit_code", 1}});
    std::fflush(stderr);
    _exit(1);
  }).detach();
}

// The durable store `config` names, or null for the memory store. Its
// errors are one line (unreachable, a newer schema).
absl::StatusOr<std::unique_ptr<store::PostgresStore>> OpenStore(
    const ServerConfig& config, executor::StoreObserver& observer) {
  if (config.store == "memory") return nullptr;
  REMEX_ASSIGN_OR_RETURN(std::unique_ptr<store::PostgresStore> store,
                         store::PostgresStore::Open(
                             {.url = config.store,
                              .replica_name = config.replica_name,
                              .observer = &observer,
                              .heartbeat_interval = config.replica_lease / 5,
                              .lease = config.replica_lease,
                              .default_ttl = config.executor.default_ttl}));
  return store;
}

// The metrics endpoint of `config`, or null when metrics are off.
absl::StatusOr<std::unique_ptr<monitoring::MetricsServer>> StartMetricsServer(
    const ServerConfig& config, const monitoring::Metrics& metrics) {
  if (config.metrics_listen.empty()) return nullptr;
  return monitoring::MetricsServer::Start(config.metrics_listen, metrics);
}

// "tokens", "client_certificates", both joined by "+", or "none".
std::string AuthMode(const ServerConfig& config) {
  std::vector<std::string> modes;
  if (!config.auth_file.empty()) modes.push_back("tokens");
  if (!config.tls_client_ca.empty()) modes.push_back("client_certificates");
  return modes.empty() ? "none" : absl::StrJoin(modes, "+");
}

// "default(thread,6),process(process,2)".
std::string PoolsSummary(const ServerConfig& config) {
  std::vector<std::string> pools;
  for (const executor::PoolConfig& pool : config.executor.pools) {
    pools.push_back(absl::StrCat(pool.name, "(",
                                 executor::PoolKindName(pool.kind), ",",
                                 pool.workers, ")"));
  }
  return absl::StrJoin(pools, ",");
}

// The `start` event: what this server is and how it was set up, in one
// line (no secrets: the store's URL has its password redacted).
void LogStart(const ServerConfig& config,
              const executor::FunctionRegistry& registry,
              const store::PostgresStore* store, const auth::ServerTls* tls,
              const OpenFilesLimit& open_files) {
  const std::string store_description =
      store != nullptr ? store->Describe() : "memory";
  const char* tls_mode = "off";
  if (tls != nullptr) {
    tls_mode = tls->requires_client_certificate() ? "mtls" : "on";
  }
  const std::string auth_mode = AuthMode(config);
  // Named: the fields view them until the line is written.
  const std::string pools = PoolsSummary(config);
  std::vector<log::Field> fields = {{"version", REMEX_VERSION},
                                    {"revision", REMEX_REVISION},
                                    {"pid", getpid()},
                                    {"pools", pools},
                                    {"functions", registry.List().size()},
                                    {"plugins", config.plugins.size()},
                                    {"store", store_description}};
  if (store != nullptr) fields.emplace_back("replica", config.replica_name);
  fields.insert(fields.end(),
                {{"auth", auth_mode},
                 {"tls", tls_mode},
                 {"insecure", config.insecure},
                 {"shutdown_grace", config.shutdown_grace},
                 {"max_connection_idle", config.max_connection_idle},
                 {"retention_ttl", config.executor.default_ttl},
                 {"memory_budget", config.executor.memory_budget},
                 {"open_files", open_files.now},
                 {"open_files_was", open_files.before},
                 {"fd_reserve", GetConnectionGuardStats().reserve},
                 {"log_level", log::LevelName(config.log_level)}});
  log::Info(
      "start",
      absl::StrCat("remex-server ", REMEX_VERSION, " started: store ",
                   store_description, "; auth ", auth_mode, "; TLS ", tls_mode,
                   "; memory budget ", config.executor.memory_budget >> 20,
                   " MiB; open files limit ", open_files.now, " (was ",
                   open_files.before, ")"),
      fields);
}

int Serve(const ServerConfig& config, const RegisterFunctions& extra,
          const sigset_t& signals, int argc, char** argv) {
  if (absl::Status protected_mode = CheckProtectedMode(
          config.listen, Authenticates(config), config.insecure);
      !protected_mode.ok()) {
    ReportStartFailure(protected_mode.message());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<auth::Authenticator>> authenticator =
      MakeAuthenticator(config);
  if (!authenticator.ok()) {
    ReportStartFailure(authenticator.status().message());
    return 1;
  }
  const OpenFilesLimit open_files = RaiseOpenFilesLimit();
  InstallConnectionGuard(DefaultFdReserve(TotalWorkers(config)));
  // Not dumpable: /proc/<pid>/environ, mem and fd/ are root's, so a command
  // running as the server's uid (not root) cannot read the server's
  // environment or memory (no core dumps either). Children are dumpable
  // again after their exec: workers and the janitor do the same.
  prctl(PR_SET_DUMPABLE, 0);
  // Before any child: from now on no child outlives the server, even on
  // kill -9.
  if (absl::Status janitor = process::StartJanitor("/proc/self/exe", argv[0]);
      !janitor.ok()) {
    ReportStartFailure(janitor.message());
    return 1;
  }
  executor::FunctionRegistry registry;
  if (absl::Status registered = BuildFunctionRegistry(config, extra, registry);
      !registered.ok()) {
    ReportStartFailure(registered.message());
    return 1;
  }
  // Declared before what reports to it, so that it is destroyed after.
  monitoring::Metrics metrics(
      {.version = REMEX_VERSION, .revision = REMEX_REVISION});
  // Declared before the executor, so that it is destroyed after it.
  absl::StatusOr<std::unique_ptr<store::PostgresStore>> store =
      OpenStore(config, metrics.store());
  if (!store.ok()) {
    ReportStartFailure(store.status().message());
    return 1;
  }
  executor::ExecutorOptions executor_options = config.executor;
  executor_options.observer = &metrics.tasks();
  executor_options.store = store->get();
  executor_options.store_observer = &metrics.store();
  if (*store != nullptr) {
    metrics.store().SetLease(config.replica_lease, config.replica_lease / 5);
  }
  // Process workers are this binary with the same flags, so that they build
  // the same registry (custom functions and plugins included).
  executor_options.pool_factories[executor::PoolKind::kProcess] =
      process::ProcessPoolFactory(
          {.argv = std::vector<std::string>(argv, argv + argc)});
  absl::StatusOr<std::unique_ptr<executor::Executor>> executor =
      executor::Executor::Create(std::move(executor_options), registry);
  if (!executor.ok()) {
    ReportStartFailure(executor.status().ToString());
    // A store that cannot be read back is not a bad flag.
    return *store != nullptr ? 1 : 2;
  }
  // Checked before anything is bound, so that a bad file says one line.
  absl::StatusOr<std::unique_ptr<auth::ServerTls>> tls = LoadServerTls(config);
  if (!tls.ok()) {
    ReportStartFailure(tls.status().message());
    return 1;
  }
  // Bound before gRPC, so that a refusal leaves nothing half served.
  absl::StatusOr<std::unique_ptr<monitoring::MetricsServer>> metrics_server =
      StartMetricsServer(config, metrics);
  if (!metrics_server.ok()) {
    ReportStartFailure(metrics_server.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<rpc::RpcServer>> server =
      rpc::RpcServer::Start(
          {.listen = config.listen,
           .pollers = config.pollers,
           .max_connection_idle = config.max_connection_idle,
           .metrics = &metrics.grpc(),
           .authenticator = authenticator->get(),
           .credentials =
               *tls != nullptr ? (*tls)->MakeCredentials() : nullptr},
          **executor);
  if (!server.ok()) {
    ReportStartFailure(server.status().ToString());
    return 1;
  }
  metrics.SetStatsSource([executor = executor->get(), server = server->get(),
                          idle = config.max_connection_idle] {
    return monitoring::ServerStats{
        .pools = executor->PoolStatistics(),
        .retained_tasks = executor->retained_tasks(),
        .awaiters = server->stats().parked_awaits.load(),
        .open_sessions = server->open_sessions(),
        .now = absl::Now(),
        .max_connection_idle = idle,
        .memory = executor->memory_use(),
        .connections = ConnectionsNow(server->port())};
  });
  // The gRPC line first: scripts take the first "listening on" line. These
  // two lines go to stdout, the same in both log formats; the log is stderr.
  std::printf("remex-server %s listening on %s\n", REMEX_VERSION,
              (*server)->address().c_str());
  if (*metrics_server != nullptr) {
    std::printf("remex-server metrics listening on %s\n",
                (*metrics_server)->address().c_str());
  }
  std::fflush(stdout);
  // Once started, so that a server that cannot start says one line only.
  LogStart(config, registry, store->get(), tls->get(), open_files);
  const std::string metrics_address =
      *metrics_server != nullptr ? (*metrics_server)->address() : "off";
  log::Info("listening",
            absl::StrCat("serving gRPC at ", (*server)->address(),
                         *metrics_server != nullptr
                             ? absl::StrCat(", metrics at ", metrics_address)
                             : ", no metrics"),
            {{"address", (*server)->address()},
             {"metrics_address", metrics_address}});
  if (const std::string warning =
          InsecureWarning((*server)->address(), Authenticates(config));
      !warning.empty()) {
    log::Warn("insecure", warning, {{"address", (*server)->address()}});
  }
  const int signal = WaitForStopSignal(
      signals, [&] { ReloadCredentials(config, **authenticator, tls->get()); });
  const absl::Time drain_start = absl::Now();
  const char* const signal_name = signal == SIGTERM ? "SIGTERM" : "SIGINT";
  log::Info("drain_started",
            absl::StrCat("got ", signal_name, ", draining (grace ",
                         absl::FormatDuration(config.shutdown_grace), ")"),
            {{"signal", signal_name},
             {"grace", config.shutdown_grace},
             {"active_tasks", (*executor)->active_tasks()}});
  if (*store != nullptr)
    ExitIfStopOutlives(config.shutdown_grace + kStoreStopMargin);
  (*server)->Shutdown(config.shutdown_grace);
  // Metrics stay served through the drain.
  metrics_server->reset();
  metrics.SetStatsSource(nullptr);
  server->reset();
  StopExecutor(std::move(*executor));
  log::Info("stopped", "stopped: pools and store closed",
            {{"took", absl::Now() - drain_start}, {"exit_code", 0}});
  return 0;
}

// A process pool's worker: the same flags and registry as the server, then
// the worker loop on the channel its supervisor gave it.
int RunWorkerMode(pid_t parent, int argc, char** argv,
                  const RegisterFunctions& register_functions) {
  process::PrepareWorkerProcess(parent);
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  absl::StatusOr<ServerConfig> config =
      flags.ok() ? BuildConfig(*flags) : flags.status();
  executor::FunctionRegistry registry;
  absl::Status status = config.status();
  if (status.ok()) {
    // Its lines (and the failures of its setup) match the server's.
    ConfigureLogging(config->log_format, config->log_level);
    status = BuildFunctionRegistry(*config, register_functions, registry);
  }
  if (!status.ok()) {
    log::Error("worker_start_failed", status.ToString(), {{"pid", getpid()}});
    return 2;
  }
  return process::RunWorker(process::kWorkerChannelFd, registry);
}

}  // namespace

int RunServer(int argc, char** argv,
              const RegisterFunctions& register_functions) {
  if (std::optional<int> code = process::RunJanitorIfAsked(argc, argv)) {
    return *code;
  }
  if (std::optional<pid_t> parent = process::TakeWorkerFlag(argc, argv)) {
    return RunWorkerMode(*parent, argc, argv, register_functions);
  }
  // Before anything can start a thread, so that every thread inherits it.
  const sigset_t signals = BlockServerSignals();
  // Debian builds Abseil without NDEBUG, which turns on Mutex deadlock
  // detection: a process-wide graph behind one global lock, updated on every
  // nested lock and every Mutex destroyed (one per task). The tests keep it
  // on; the server does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "remex-server: " << flags.status().message() << "\n";
    return 2;
  }
  if (flags->help) {
    std::cout << kUsage;
    return 0;
  }
  if (flags->version) {
    std::cout << "remex-server " << REMEX_VERSION << " (" << REMEX_REVISION
              << ")\n";
    return 0;
  }
  // The flags' settings first, so that a bad config file is reported in
  // the format asked for; then the file's, under the flags.
  ConfigureLogging(flags->log_format.value_or(log::Format::kText),
                   flags->log_level.value_or(log::Level::kInfo));
  absl::StatusOr<ServerConfig> config = BuildConfig(*flags);
  if (!config.ok()) {
    ReportStartFailure(config.status().message());
    return 2;
  }
  ConfigureLogging(config->log_format, config->log_level);
  // Not in BuildConfig: process workers (which build their config from the
  // same flags) have no store.
  if (absl::Status store =
          ResolveStoreConfig(flags->store, std::getenv("REMEX_STORE"), *config);
      !store.ok()) {
    ReportStartFailure(store.message());
    return 1;
  }
  return Serve(*std::move(config), register_functions, signals, argc, argv);
}

}  // namespace remex::server
