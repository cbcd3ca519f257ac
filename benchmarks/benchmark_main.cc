#include "benchmarks/benchmark_main.h"

#include <algorithm>
#include <cstring>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "server/executor/builtin_functions.h"

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
    (void)executor::RegisterBuiltinFunctions({}, *registry);
    return registry;
  }();
  return *registry;
}

}  // namespace remex::benchmarks
