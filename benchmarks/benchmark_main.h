// What every Google Benchmark binary of remex shares: its main and the
// built-in functions.
#ifndef REMEX_BENCHMARKS_BENCHMARK_MAIN_H_
#define REMEX_BENCHMARKS_BENCHMARK_MAIN_H_

#include <memory>

#include "server/executor/executor.h"
#include "server/executor/function_registry.h"

namespace remex::benchmarks {

// Runs the benchmarks the flags select and returns the exit code. Abseil's
// Mutex deadlock detection is turned off first, as remex-server does
// (Debian's Abseil is built with it on, and it costs a global lock per
// Mutex); `--deadlock-detection` as the first argument keeps it on, to
// compare.
int RunBenchmarks(int argc, char** argv);

// The built-in functions (not the test-only ones), registered once. Never
// destroyed, so that it outlives every executor a benchmark leaks.
const executor::FunctionRegistry& BuiltinRegistry();

// An executor over BuiltinRegistry() with `options` plus, if it names none,
// one pool "default" of `workers` threads and room for a million queued
// tasks. Aborts if it cannot be made.
std::unique_ptr<executor::Executor> MakeExecutor(
    int workers, executor::ExecutorOptions options = {});

// Submits `count` tasks of `spec` at once and returns when all have ended.
// Aborts if one is refused (a benchmark must not wait on it forever).
void RunBatch(executor::Executor& executor, const executor::TaskSpec& spec,
              int count);

}  // namespace remex::benchmarks

#endif  // REMEX_BENCHMARKS_BENCHMARK_MAIN_H_
