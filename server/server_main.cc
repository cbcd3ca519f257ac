#include "server/server_main.h"

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "server/config.h"
#include "server/executor/builtin_functions.h"
#include "server/executor/executor.h"
#include "server/rpc/rpc_server.h"

namespace remex::server {
namespace {

constexpr char kUsage[] = R"(usage: remex-server [flags]

Runs registered functions for gRPC clients (service remex.v1.Executor, with
grpc.health.v1.Health and server reflection).

flags:
  --listen HOST:PORT        where to serve gRPC (default 0.0.0.0:50051);
                            port 0 picks a free port; the server prints
                            "listening on HOST:PORT" once it serves
  --config FILE             JSON or YAML config (default: built in: a thread
                            pool "default" sized to the machine). Keys:
                              pools: [{name, kind: thread, workers, max_queue}]
                              retention: {ttl: "10m", max_tasks, max_bytes}
                              shutdown_grace: "10s"
                              pollers: N
  --shutdown-grace DURATION how long running tasks may go on after SIGTERM
                            or SIGINT before they are cancelled (default 10s;
                            overrides the config)
  --pollers N               completion queues / poller threads (default: one
                            per core; overrides the config)
  --enable-test-functions   registers `crash`, which kills the process
                            running it, and `ignore_cancel`, which keeps its
                            worker busy after a cancel (for tests only)
  --version                 prints the version and exits
  --help                    prints this and exits

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
  std::optional<std::string> config_path;
  std::optional<absl::Duration> shutdown_grace;
  std::optional<int> pollers;
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

absl::Status ParseFlag(absl::string_view name,
                       std::optional<absl::string_view> inline_value, int argc,
                       char** argv, int& i, Flags& flags) {
  if (name == "--help" || name == "-h") {
    flags.help = true;
  } else if (name == "--version") {
    flags.version = true;
  } else if (name == "--enable-test-functions") {
    flags.enable_test_functions = true;
  } else if (name == "--listen") {
    REMEX_ASSIGN_OR_RETURN(flags.listen,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--config") {
    REMEX_ASSIGN_OR_RETURN(flags.config_path,
                           FlagValue(name, inline_value, argc, argv, i));
  } else if (name == "--shutdown-grace") {
    REMEX_ASSIGN_OR_RETURN(const std::string text,
                           FlagValue(name, inline_value, argc, argv, i));
    absl::Duration grace;
    if (!absl::ParseDuration(text, &grace) || grace < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shutdown-grace: bad duration '", text, "'"));
    }
    flags.shutdown_grace = grace;
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

absl::StatusOr<ServerConfig> BuildConfig(const Flags& flags) {
  ServerConfig config = DefaultConfig();
  if (flags.config_path.has_value()) {
    REMEX_ASSIGN_OR_RETURN(
        config, LoadConfigFile(*flags.config_path, std::move(config)));
  }
  if (flags.listen.has_value()) config.listen = *flags.listen;
  if (flags.shutdown_grace.has_value()) {
    config.shutdown_grace = *flags.shutdown_grace;
  }
  if (flags.pollers.has_value()) config.pollers = *flags.pollers;
  config.enable_test_functions = flags.enable_test_functions;
  return config;
}

// Blocks SIGTERM and SIGINT in this thread and every thread it starts, so
// that only WaitForStopSignal() receives them.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForStopSignal(const sigset_t& signals) {
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  return signal;
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
  std::fprintf(stderr,
               "remex-server: workers still busy in functions that ignore "
               "cancellation after %s; exiting without them\n",
               absl::FormatDuration(kWorkerStopTimeout).c_str());
  std::fflush(stderr);
  std::_Exit(0);
}

int Serve(const ServerConfig& config, const RegisterFunctions& extra,
          const sigset_t& signals) {
  executor::FunctionRegistry registry;
  absl::Status registered = executor::RegisterBuiltinFunctions(
      {.enable_test_functions = config.enable_test_functions}, registry);
  if (registered.ok() && extra) registered = extra(registry);
  if (!registered.ok()) {
    std::cerr << "remex-server: " << registered << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<executor::Executor>> executor =
      executor::Executor::Create(config.executor, registry);
  if (!executor.ok()) {
    std::cerr << "remex-server: " << executor.status() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<rpc::RpcServer>> server =
      rpc::RpcServer::Start(
          {.listen = config.listen, .pollers = config.pollers}, **executor);
  if (!server.ok()) {
    std::cerr << "remex-server: " << server.status() << "\n";
    return 1;
  }
  std::printf("remex-server %s listening on %s\n", REMEX_VERSION,
              (*server)->address().c_str());
  std::fflush(stdout);
  const int signal = WaitForStopSignal(signals);
  std::fprintf(stderr, "remex-server: got %s, draining (grace %s)\n",
               signal == SIGTERM ? "SIGTERM" : "SIGINT",
               absl::FormatDuration(config.shutdown_grace).c_str());
  (*server)->Shutdown(config.shutdown_grace);
  server->reset();
  StopExecutor(std::move(*executor));
  std::fprintf(stderr, "remex-server: stopped\n");
  return 0;
}

}  // namespace

int RunServer(int argc, char** argv,
              const RegisterFunctions& register_functions) {
  // Before anything can start a thread, so that every thread inherits it.
  const sigset_t signals = BlockStopSignals();
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
  absl::StatusOr<ServerConfig> config = BuildConfig(*flags);
  if (!config.ok()) {
    std::cerr << "remex-server: " << config.status().message() << "\n";
    return 2;
  }
  return Serve(*config, register_functions, signals);
}

}  // namespace remex::server
