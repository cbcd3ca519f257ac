// Micro benchmarks of the executor core (no gRPC): the cost of one task from
// Submit to its terminal state, through a real thread pool.
//
//   build/benchmarks/executor_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one line)
#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "benchmark/benchmark.h"
#include "server/executor/builtin_functions.h"
#include "server/executor/executor.h"

namespace remex::executor {
namespace {

std::unique_ptr<Executor> MakeExecutor(const FunctionRegistry& registry,
                                       int workers) {
  ExecutorOptions options;
  options.pools.push_back(
      {.name = "default", .workers = workers, .max_queue = 1 << 20});
  return *Executor::Create(options, registry);
}

const FunctionRegistry& Builtins() {
  static const FunctionRegistry* registry = [] {
    auto* registry = new FunctionRegistry;
    (void)RegisterBuiltinFunctions({}, *registry);
    return registry;
  }();
  return *registry;
}

// One echo task at a time: Submit, wait for its done callback.
void BM_SubmitAndComplete(benchmark::State& state) {
  std::unique_ptr<Executor> executor = MakeExecutor(Builtins(), 1);
  for (auto _ : state) {
    absl::Notification done;
    absl::StatusOr<TaskSnapshot> task =
        executor->Submit({.function = "echo", .args = Json{{"x", 1}}});
    (void)executor->OnDone(task->id,
                           [&done](const TaskSnapshot&) { done.Notify(); });
    done.WaitForNotification();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SubmitAndComplete)->UseRealTime();

// A batch of echo tasks in flight at once; items/s is the core's throughput.
void BM_Throughput(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  std::unique_ptr<Executor> executor = MakeExecutor(Builtins(), 2);
  for (auto _ : state) {
    std::atomic<int> remaining{batch};
    absl::Notification done;
    for (int i = 0; i < batch; ++i) {
      absl::StatusOr<TaskSnapshot> task =
          executor->Submit({.function = "echo", .ttl = absl::Seconds(1)});
      (void)executor->OnDone(task->id, [&](const TaskSnapshot&) {
        if (remaining.fetch_sub(1) == 1) done.Notify();
      });
    }
    done.WaitForNotification();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_Throughput)->Arg(1000)->UseRealTime();

// One page of List (100 tasks, no filter) with 100,000 finished tasks kept.
void BM_ListPage(benchmark::State& state) {
  constexpr int kTasks = 100000;
  std::unique_ptr<Executor> executor = MakeExecutor(Builtins(), 2);
  std::atomic<int> remaining{kTasks};
  absl::Notification done;
  for (int i = 0; i < kTasks; ++i) {
    absl::StatusOr<TaskSnapshot> task = executor->Submit({.function = "echo"});
    (void)executor->OnDone(task->id, [&](const TaskSnapshot&) {
      if (remaining.fetch_sub(1) == 1) done.Notify();
    });
  }
  done.WaitForNotification();
  ListQuery query{.page_size = 100};
  for (auto _ : state) {
    ListPage page = executor->List(query);
    query.page_token = page.next_page_token.empty() ? "" : page.next_page_token;
    benchmark::DoNotOptimize(page);
  }
}
BENCHMARK(BM_ListPage)->UseRealTime();

}  // namespace
}  // namespace remex::executor

BENCHMARK_MAIN();
