// Process pools against thread pools in the same run (executor core, no
// gRPC): the cost of shipping a task to a worker process and back, and how
// close a CPU-bound batch gets to its ideal wall time.
//
//   build/benchmarks/process_pool_benchmark
//
// BM_SpinBatch: 200 x `spin` 10 ms on 2 workers; ideal wall time 1.0 s,
// the `vs_ideal` counter is wall time / 1.0 s. BM_NoopRoundTrip: one `echo`
// at a time, Submit to done callback; p50_us and p99_us are per task.
// This binary is also its own process worker (--remex-worker).
#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "benchmarks/benchmark_main.h"
#include "server/executor/executor.h"
#include "server/process/process_pool.h"
#include "server/process/worker.h"

namespace remex::executor {
namespace {

std::unique_ptr<Executor> MakeExecutor(PoolKind kind, int workers) {
  ExecutorOptions options;
  options.pools.push_back({.name = "default",
                           .kind = kind,
                           .workers = workers,
                           .max_queue = 1 << 20});
  options.pool_factories[PoolKind::kProcess] =
      process::ProcessPoolFactory({.argv = {"/proc/self/exe"}});
  return benchmarks::MakeExecutor(workers, std::move(options));
}

PoolKind KindOf(const benchmark::State& state) {
  return state.range(0) == 0 ? PoolKind::kThread : PoolKind::kProcess;
}

void BM_SpinBatch(benchmark::State& state) {
  constexpr int kTasks = 200;
  std::unique_ptr<Executor> executor = MakeExecutor(KindOf(state), 2);
  state.SetLabel(std::string(PoolKindName(KindOf(state))));
  double seconds = 0;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    benchmarks::RunBatch(
        *executor, {.function = "spin", .args = Json{{"ms", 10}}}, kTasks);
    seconds += absl::ToDoubleSeconds(absl::Now() - start);
  }
  state.counters["vs_ideal"] = seconds / state.iterations() / 1.0;
}
BENCHMARK(BM_SpinBatch)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_NoopRoundTrip(benchmark::State& state) {
  std::unique_ptr<Executor> executor = MakeExecutor(KindOf(state), 1);
  state.SetLabel(std::string(PoolKindName(KindOf(state))));
  std::vector<double> micros;
  const TaskSpec spec{.function = "echo", .args = Json{{"x", 1}}};
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    benchmarks::RunBatch(*executor, spec, 1);
    micros.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  }
  std::sort(micros.begin(), micros.end());
  state.counters["p50_us"] = micros[micros.size() / 2];
  state.counters["p99_us"] = micros[micros.size() * 99 / 100];
}
BENCHMARK(BM_NoopRoundTrip)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace remex::executor

int main(int argc, char** argv) {
  if (std::optional<pid_t> parent =
          remex::process::TakeWorkerFlag(argc, argv)) {
    remex::process::PrepareWorkerProcess(*parent);
    return remex::process::RunWorker(remex::process::kWorkerChannelFd,
                                     remex::benchmarks::BuiltinRegistry());
  }
  return remex::benchmarks::RunBenchmarks(argc, argv);
}
