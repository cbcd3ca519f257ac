// The cost of the metrics on the hot path: the executor's submit → complete
// path with no observer (the baseline, arg 0) and with remex::monitoring's
// TaskMetrics attached (arg 1), in the same run; and the observer's calls
// for one task alone, from one and from two threads.
//
//   build/benchmarks/metrics_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <memory>

#include "benchmark/benchmark.h"
#include "benchmarks/benchmark_main.h"
#include "monitoring/metrics.h"
#include "server/executor/executor.h"

namespace remex::monitoring {
namespace {

using executor::Executor;
using executor::TaskSnapshot;

// An executor with one "default" pool of `workers`, reporting to `metrics`
// unless it is null.
std::unique_ptr<Executor> MakeExecutor(int workers, Metrics* metrics) {
  return benchmarks::MakeExecutor(
      workers, {.observer = metrics == nullptr ? nullptr : &metrics->tasks()});
}

// One echo task at a time: Submit, wait for its done callback.
void BM_SubmitAndComplete(benchmark::State& state) {
  Metrics metrics({});
  std::unique_ptr<Executor> executor =
      MakeExecutor(1, state.range(0) == 0 ? nullptr : &metrics);
  const executor::TaskSpec spec{.function = "echo",
                                .args = executor::Json{{"x", 1}}};
  for (auto _ : state) benchmarks::RunBatch(*executor, spec, 1);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(state.range(0) == 0 ? "no metrics" : "metrics");
}
BENCHMARK(BM_SubmitAndComplete)->Arg(0)->Arg(1)->UseRealTime();

// A batch of echo tasks in flight at once on 2 workers; items/s is the
// core's throughput.
void BM_Throughput(benchmark::State& state) {
  constexpr int kBatch = 1000;
  Metrics metrics({});
  std::unique_ptr<Executor> executor =
      MakeExecutor(2, state.range(0) == 0 ? nullptr : &metrics);
  const executor::TaskSpec spec{.function = "echo", .ttl = absl::Seconds(1)};
  for (auto _ : state) benchmarks::RunBatch(*executor, spec, kBatch);
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetLabel(state.range(0) == 0 ? "no metrics" : "metrics");
}
BENCHMARK(BM_Throughput)->Arg(0)->Arg(1)->UseRealTime();

// What the executor calls for one task: submitted, started, finished (two
// histogram observations and two counter increments).
void BM_ObserverCallsPerTask(benchmark::State& state) {
  static Metrics* const metrics = new Metrics({});
  static executor::TaskSeries* const series =
      metrics->tasks().AddSeries("default", "echo").release();
  for (auto _ : state) {
    series->OnSubmitted();
    series->OnStarted(absl::Microseconds(30));
    series->OnFinished(executor::TaskState::kSucceeded, absl::Microseconds(5));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ObserverCallsPerTask)->Threads(1)->Threads(2)->UseRealTime();

// One scrape's worth of serialization (the exposer's side, not the hot
// path), for scale.
void BM_Scrape(benchmark::State& state) {
  Metrics metrics({});
  std::unique_ptr<Executor> executor = MakeExecutor(2, &metrics);
  metrics.SetStatsSource(
      [&executor] { return ServerStats{.pools = executor->PoolStatistics()}; });
  for (auto _ : state) benchmark::DoNotOptimize(metrics.Scrape());
  metrics.SetStatsSource(nullptr);
}
BENCHMARK(BM_Scrape)->UseRealTime();

}  // namespace
}  // namespace remex::monitoring

int main(int argc, char** argv) {
  return remex::benchmarks::RunBenchmarks(argc, argv);
}
