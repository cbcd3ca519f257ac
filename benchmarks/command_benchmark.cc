// What a command function costs beyond starting a process: RunCommand (pipes,
// process group, pidfd, capture) against a bare posix_spawn + waitpid of the
// same executable, in the same run.
//
//   build/benchmarks/command_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <spawn.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "benchmarks/benchmark_main.h"
#include "server/executor/cancellation.h"
#include "server/process/command_runner.h"

extern char** environ;

namespace remex::process {
namespace {

using ::remex::executor::CancellationToken;

// Baseline: start /bin/true and reap it, nothing else.
void BM_BareSpawnAndWait(benchmark::State& state) {
  char path[] = "/bin/true";
  char* argv[] = {path, nullptr};
  for (auto _ : state) {
    pid_t pid = -1;
    if (posix_spawn(&pid, path, nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      break;
    }
    int status = 0;
    waitpid(pid, &status, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BareSpawnAndWait)->UseRealTime();

// RunCommand of /bin/true; range(0) bytes of stdin, through /bin/cat when
// not zero (so that they come back on stdout).
void BM_RunCommand(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  CommandRun run = {.argv = {bytes == 0 ? "/bin/true" : "/bin/cat"},
                    .env = {"PATH=/usr/bin:/bin"},
                    .stdin_data = std::string(bytes, 'x'),
                    .max_output_bytes = 1 << 30};
  CancellationToken never;
  for (auto _ : state) {
    absl::StatusOr<CommandResult> result = RunCommand(run, never);
    if (!result.ok() || result->stdout_data.size() != bytes) {
      state.SkipWithError("the command failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_RunCommand)->Arg(0)->Arg(64 << 10)->Arg(8 << 20)->UseRealTime();

}  // namespace
}  // namespace remex::process

int main(int argc, char** argv) {
  return remex::benchmarks::RunBenchmarks(argc, argv);
}
