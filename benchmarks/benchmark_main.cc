#include "benchmarks/benchmark_main.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "benchmark/benchmark.h"
#include "server/functions/builtin_functions.h"

namespace remex::benchmarks {

int RunBenchmarks(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--deadlock-detection") == 0) {
    std::copy(argv + 2, argv + argc + 1, argv + 1);
    --argc;
  } else {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

const executor::FunctionRegistry& BuiltinRegistry() {
  static const executor::FunctionRegistry* registry = [] {
    auto* registry = new executor::FunctionRegistry;
    (void)functions::RegisterBuiltinFunctions({}, *registry);
    return registry;
  }();
  return *registry;
}

std::unique_ptr<executor::Executor> MakeExecutor(
    int workers, executor::ExecutorOptions options) {
  if (options.pools.empty()) {
    options.pools.push_back(
        {.name = "default", .workers = workers, .max_queue = 1 << 20});
  }
  absl::StatusOr<std::unique_ptr<executor::Executor>> made =
      executor::Executor::Create(std::move(options), BuiltinRegistry());
  if (!made.ok()) {
    std::fprintf(stderr, "executor: %s\n", made.status().ToString().c_str());
    std::abort();
  }
  return *std::move(made);
}

namespace {

// Counts ends down to zero, as a session's link is told of them: through
// the listener, with no allocation per task.
class Countdown final : public executor::DoneListener {
 public:
  explicit Countdown(int count) : remaining_(count) {}
  void OnTaskDone(uint64_t /*tag*/, const executor::TaskSnapshot&) override {
    if (remaining_.fetch_sub(1) == 1) done_.Notify();
  }
  void Wait() { done_.WaitForNotification(); }

 private:
  std::atomic<int> remaining_;
  absl::Notification done_;
};

}  // namespace

void RunBatch(executor::Executor& executor, const executor::TaskSpec& spec,
              int count) {
  Countdown countdown(count);
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<executor::TaskSnapshot> task =
        executor.Submit(spec, {}, &countdown, static_cast<uint64_t>(i));
    if (!task.ok()) {
      std::fprintf(stderr, "submit: %s\n", task.status().ToString().c_str());
      std::abort();
    }
  }
  countdown.Wait();
}

}  // namespace remex::benchmarks
