// Micro benchmarks of the executor core: one task from Submit to its
// terminal state through a real thread pool, the pool hand-off alone, and
// the proto <-> executor conversions of the RPC front end.
//
//   build/benchmarks/executor_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one line)
//
// Instruction counts per task (repeatable, unlike times on a shared machine):
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out
//       build/benchmarks/executor_benchmark
//       --benchmark_filter='BM_Throughput/1000/iterations'   (one line)
//   callgrind_annotate /tmp/cg.out | head -40
// and divide the total by the 50,000 tasks it runs.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "benchmarks/benchmark_main.h"
#include "server/executor/executor.h"
#include "server/executor/thread_pool.h"
#include "server/rpc/proto_mapping.h"

namespace remex::executor {
namespace {

// One echo task at a time: Submit, wait for its done callback.
void BM_SubmitAndComplete(benchmark::State& state) {
  std::unique_ptr<Executor> executor = benchmarks::MakeExecutor(1);
  const TaskSpec spec{.function = "echo", .args = Json{{"x", 1}}};
  for (auto _ : state) benchmarks::RunBatch(*executor, spec, 1);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SubmitAndComplete)->UseRealTime();

// A batch of echo tasks in flight at once; items/s is the core's throughput.
void BM_Throughput(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  std::unique_ptr<Executor> executor = benchmarks::MakeExecutor(2);
  const TaskSpec spec{.function = "echo", .ttl = absl::Seconds(1)};
  for (auto _ : state) benchmarks::RunBatch(*executor, spec, batch);
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_Throughput)->Arg(1000)->UseRealTime();
// A fixed amount of work, for instruction counts under callgrind.
BENCHMARK(BM_Throughput)->Arg(1000)->Iterations(50)->UseRealTime();

// Counts the tasks its pool hands it and wakes the benchmark after `target`.
class CountingRunner final : public TaskRunner {
 public:
  void Expect(int64_t target) {
    absl::MutexLock lock(&mu_);
    ran_ = 0;
    target_ = target;
  }
  void Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](CountingRunner* r)
             ABSL_NO_THREAD_SAFETY_ANALYSIS { return r->ran_ >= r->target_; },
        this));
  }
  void Run(const std::shared_ptr<Task>&) override {
    absl::MutexLock lock(&mu_);
    ++ran_;
  }
  // Only Run is used: thread pools call nothing else.
  bool BeginRun(const std::shared_ptr<Task>&) override { return true; }
  void CompleteRun(const std::shared_ptr<Task>&, int32_t, TaskState,
                   std::shared_ptr<const TaskOutcome>) override {}
  bool RetryRun(const std::shared_ptr<Task>&, int32_t) override {
    return false;
  }

 private:
  absl::Mutex mu_;
  int64_t ran_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t target_ ABSL_GUARDED_BY(mu_) = 0;
};

// The pool alone: Enqueue of range(0) ready tasks and the workers
// (range(1)) taking them, with a runner that does nothing.
void BM_PoolHandOff(benchmark::State& state) {
  const int64_t batch = state.range(0);
  CountingRunner runner;
  ThreadPool pool({.name = "bench",
                   .workers = static_cast<int>(state.range(1)),
                   .max_queue = 1 << 20},
                  runner);
  auto spec = std::make_shared<const TaskSpec>(TaskSpec{.function = "noop"});
  std::vector<std::shared_ptr<Task>> tasks;
  for (int64_t i = 0; i < batch; ++i) {
    tasks.push_back(std::make_shared<Task>("t", static_cast<uint64_t>(i + 1),
                                           spec, absl::Now()));
  }
  for (auto _ : state) {
    runner.Expect(batch);
    for (const std::shared_ptr<Task>& task : tasks) (void)pool.Enqueue(task);
    runner.Wait();
  }
  pool.Shutdown();
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_PoolHandOff)
    ->Args({1, 1})
    ->Args({1000, 1})
    ->Args({1000, 2})
    ->Args({1000, 8})
    ->UseRealTime();

v1::SubmitRequest SampleSubmit() {
  v1::SubmitRequest request;
  request.set_function("echo");
  auto& fields =
      *request.mutable_args()->mutable_struct_value()->mutable_fields();
  fields["n"].set_number_value(100000);
  fields["name"].set_string_value("a short string argument");
  auto* list = fields["list"].mutable_list_value();
  for (int i = 0; i < 4; ++i) list->add_values()->set_number_value(i);
  request.set_input("input bytes");
  (*request.mutable_labels())["team"] = "bench";
  request.mutable_run_timeout()->set_seconds(30);
  return request;
}

void BM_TaskSpecFromProto(benchmark::State& state) {
  const v1::SubmitRequest request = SampleSubmit();
  for (auto _ : state) {
    absl::StatusOr<TaskSpec> spec = rpc::TaskSpecFromProto(request);
    benchmark::DoNotOptimize(spec);
  }
}
BENCHMARK(BM_TaskSpecFromProto);

void BM_TaskToProto(benchmark::State& state) {
  absl::StatusOr<TaskSpec> spec = rpc::TaskSpecFromProto(SampleSubmit());
  TaskSnapshot snapshot;
  snapshot.id = "0123456789abcdef01234567";
  snapshot.spec = std::make_shared<const TaskSpec>(*std::move(spec));
  snapshot.state = TaskState::kSucceeded;
  snapshot.attempt = 1;
  snapshot.created_at = snapshot.started_at = snapshot.finished_at =
      absl::Now();
  auto outcome = std::make_shared<TaskOutcome>();
  outcome->result = Json{{"primes", 9592}, {"ok", true}};
  outcome->output = "output bytes";
  snapshot.outcome = outcome;
  for (auto _ : state) {
    v1::Task task;
    rpc::TaskToProto(snapshot, &task);
    benchmark::DoNotOptimize(task);
  }
}
BENCHMARK(BM_TaskToProto);

void BM_JsonFromValue(benchmark::State& state) {
  const v1::SubmitRequest request = SampleSubmit();
  for (auto _ : state) {
    Json json = rpc::JsonFromValue(request.args());
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_JsonFromValue);

void BM_JsonToValue(benchmark::State& state) {
  const Json json = rpc::JsonFromValue(SampleSubmit().args());
  for (auto _ : state) {
    google::protobuf::Value value;
    rpc::JsonToValue(json, &value);
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_JsonToValue);

// One page of List (100 tasks, no filter) with 100,000 finished tasks kept.
void BM_ListPage(benchmark::State& state) {
  constexpr int kTasks = 100000;
  std::unique_ptr<Executor> executor = benchmarks::MakeExecutor(2);
  benchmarks::RunBatch(*executor, {.function = "echo"}, kTasks);
  ListQuery query{.page_size = 100};
  for (auto _ : state) {
    ListPage page = *executor->List(query);
    query.page_token = page.next_page_token;
    benchmark::DoNotOptimize(page);
  }
}
BENCHMARK(BM_ListPage)->UseRealTime();

}  // namespace
}  // namespace remex::executor

int main(int argc, char** argv) {
  return remex::benchmarks::RunBenchmarks(argc, argv);
}
